"""What runs the per-camera stages: the camera workers and their group (the local engine), the Ray
engine, the tracker and crop sampler each worker drives, the embed queue, run statistics and the
on-disk spill of track points (docs/design.md §2)."""
