"""Runtime of `reidpipe run`: sources, detection, tracking, embedding, cross-camera linking, export."""
