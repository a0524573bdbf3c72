"""A tiny ReID-like ONNX model exported by torch with its batch fixed at 1, its flatten hard-coded as
``reshape(1, -1)`` like torchreid's OSNet export: ``(1, 3, H, W) -> (1, 6)`` (tests/ is on sys.path)."""

from __future__ import annotations

import warnings
from pathlib import Path


def export_batch_one_model(path: Path, input_hw: tuple[int, int] = (16, 8)) -> Path:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 6)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)).reshape(1, -1))

    torch.manual_seed(0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Net().eval(),
            (torch.randn(1, 3, *input_hw),),
            str(path),
            input_names=["images"],
            output_names=["out"],
            opset_version=13,
            dynamo=False,
        )
    return path
