"""Training engine: stages, hooks, checkpoints. Used by `reidpipe train`."""
