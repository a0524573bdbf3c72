"""ReID models (backbones, variants), losses, datasets and metrics. Imports neither pipeline nor trainers."""
