"""OSNet in torchreid's layout: the real published files load into it and compute what the ONNX export
computes; an ONNX ReID model converted with onnx2torch embeds as onnxruntime does."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reidpipe.reid.backbones.osnet import WIDTHS, build_osnet, is_osnet_state_dict, osnet_from_state_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from shared_data import DATA  # noqa: E402

MODELS = DATA / "models"
CROPS = DATA / "reid" / "cuhk03_743" / "query"
needs_data = pytest.mark.skipif(not (MODELS / "osnet_x0_25_msmt17.onnx").is_file(), reason="needs ../shared/data")


def test_widths_and_the_feature():
    for width, channels in WIDTHS.items():
        net = build_osnet(width).eval()
        assert net.conv1.conv.out_channels == channels[0] and net.conv5.conv.out_channels == channels[3]
    with torch.no_grad():
        assert build_osnet(0.25).eval()(torch.randn(2, 3, 256, 128)).shape == (2, 512)


def test_a_foreign_state_dict_is_refused_by_name():
    from reidpipe.errors import CheckpointError

    assert not is_osnet_state_dict({"layer1.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not a torchreid OSNet state dict"):
        osnet_from_state_dict({"layer1.0.conv1.weight": torch.zeros(1)}, "x.pth")


def _real_crops(n: int = 8) -> torch.Tensor:
    import cv2

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    for path in sorted(CROPS.glob("*.jpg"))[:n]:
        rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(path)), (128, 256)), cv2.COLOR_BGR2RGB)
        out.append(((rgb.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def _ort(path: Path, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"images": x[i : i + 1].numpy()})[0] for i in range(len(x))])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@needs_data
@pytest.mark.real_data
def test_real_torchreid_pth_loads_with_every_key():
    state = torch.load(MODELS / "osnet_x0_25_msmt17.pth", map_location="cpu", weights_only=True)
    net = osnet_from_state_dict(state, "osnet_x0_25_msmt17.pth")  # strict: every trunk key, every shape
    assert set(net.state_dict()) == {k for k in state if not k.startswith("classifier.")}


def _fold_into(net: nn.Module, onnx_path: Path) -> None:
    """Load the ONNX graph's weights (conv+BN folded by the export) into ``net``: each convolution,
    in execution order, gets the graph's next convolution (weights shared by the gate's four calls
    counted once); each BN after a folded conv becomes the identity plus the folded bias."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    convs, seen = [], set()
    for node in proto.graph.node:
        if node.op_type == "Conv" and node.input[1] not in seen:
            seen.add(node.input[1])
            convs.append([inits[n] for n in node.input[1:]])
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    bn1d = next(n for n in proto.graph.node if n.op_type == "BatchNormalization")
    order: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda m, _: order.append(m) if m not in order else None)
             for m in net.modules() if isinstance(m, nn.Conv2d)]  # fmt: skip
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, 256, 128))
    for h in hooks:
        h.remove()
    assert len(order) == len(convs)
    bn_after = {}
    for m in net.modules():
        for conv_name, bn_name in (("conv", "bn"), ("conv2", "bn")):
            if isinstance(getattr(m, conv_name, None), nn.Conv2d) and isinstance(
                getattr(m, bn_name, None), nn.BatchNorm2d
            ):
                bn_after[getattr(m, conv_name)] = getattr(m, bn_name)
    with torch.no_grad():
        for conv, weights in zip(order, convs):
            conv.weight.copy_(weights[0])
            if conv in bn_after:
                bn = bn_after[conv]
                bn.weight.fill_(1.0), bn.running_mean.zero_(), bn.running_var.fill_(1.0 - bn.eps)
                bn.bias.copy_(weights[1])
            elif len(weights) > 1:
                conv.bias.copy_(weights[1])
        net.fc[0].weight.copy_(inits[gemm.input[1]]), net.fc[0].bias.copy_(inits[gemm.input[2]])
        bn = net.fc[1]
        for attr, idx in (("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)):
            getattr(bn, attr).copy_(inits[bn1d.input[idx]])


@needs_data
@pytest.mark.real_data
def test_osnet_module_computes_the_real_onnx_graph():
    """The architecture is torchreid's OSNet: given the ONNX export's own weights it gives the ONNX's
    embeddings on real crops."""
    onnx_path = MODELS / "osnet_x0_25_msmt17.onnx"
    net = build_osnet(0.25)
    _fold_into(net, onnx_path)
    x = _real_crops()
    with torch.no_grad():
        ours = net.eval()(x).numpy()
    assert _cosines(ours, _ort(onnx_path, x)).min() > 0.999


@needs_data
@pytest.mark.real_data
def test_onnx_embedder_converted_to_torch_embeds_as_onnxruntime():
    """``--init model.onnx``: the finetune model built on the real OSNet ONNX (onnx2torch, batch freed)
    gives the ONNX's embeddings before training."""
    pytest.importorskip("onnx2torch")
    from reidpipe.reid.registry import create_model

    onnx_path = MODELS / "osnet_x0_25_msmt17.onnx"
    model = create_model("finetune", num_classes=5, pretrained=False, backbone="onnx", onnx=str(onnx_path)).eval()
    assert model.input_size == (256, 128)
    x = _real_crops()
    with torch.no_grad():
        ours = model.embed(x).numpy()  # one batch of 8: the graph's batch-1 reshape was freed
    assert _cosines(ours, _ort(onnx_path, x)).min() > 0.999


@needs_data
@pytest.mark.real_data
def test_torchreid_pth_in_the_finetune_model_exports_what_it_computes(tmp_path):
    from reidpipe.reid.export import export_onnx
    from reidpipe.reid.registry import create_model

    pth = MODELS / "osnet_x0_25_msmt17.pth"
    model = create_model("finetune", num_classes=5, pretrained=str(pth)).eval()
    x = _real_crops()
    with torch.no_grad():
        trunk = model.trunk(x).numpy()
        emb = model.embed(x).numpy()
    assert _cosines(trunk, emb).min() > 0.9999  # a fresh BNNeck keeps the given model's embedding
    report = export_onnx(model, tmp_path / "m.onnx")
    assert _cosines(_ort(tmp_path / "m.onnx", x), emb).min() > 0.9999 and report.max_abs_diff < 1e-4
