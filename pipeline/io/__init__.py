"""What a run reads and writes: frame sources, MOTChallenge files, the output files (trajectories,
events, MOT, videos), thumbnails and the HTML report (docs/design.md §3.1, §3.6, §5)."""
