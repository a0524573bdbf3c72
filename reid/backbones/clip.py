"""open_clip's CLIP (RN50, ViT-B/16) adapted to person-ReID inputs, with its internals exposed.

Build with :func:`build_clip`::

    backbone = build_clip("RN50", input_size=(256, 128), pretrained=True)   # or False / "path/RN50.pt"
    backbone = build_clip("ViT-B-16", input_size=(384, 192), pretrained=False, tiny=True)

ReID adaptation (weights published for 224x224 have their positional embeddings resized on load):

- **RN50**: last stride 1 — layer4's first Bottleneck downsamples with ``AvgPool2d(2)`` (in the main
  path after conv2, and before the 1x1 conv of its shortcut); both pools are replaced by identities
  and the block's ``stride`` set to 1, so the output stride is 16 (a 16x8 map for 256x128 inputs).
  The attention pool's positional embedding (1 + 7x7 tokens) is resized bicubically to the new grid
  (1 + h*w); the first (global/mean) token's embedding is kept as is.
- **ViT-B/16**: the positional embedding (1 + 14x14) is resized bicubically to the patch grid of the
  input (16x8 for 256x128, 24x12 for 384x192). ``stride_size`` < 16 gives overlapping patches
  (TransReID / CLIP-ReID's option; grid = (H - 16) // stride + 1).

Weights: ``pretrained=True`` loads OpenAI's weights through open_clip's own pretrained registry and
download (Hugging Face hub / OpenAI URL, cached); offline and not cached it raises
``WeightsUnavailableError`` saying how to pass a local file. ``pretrained="path"`` loads a local
file (an OpenAI ``.pt`` archive, an open_clip state dict ``.bin``/``.pt``/``.safetensors``, or a
reidpipe checkpoint of a CLIP variant, whose ``backbone.clip.*`` weights are taken; they must have
been saved at the same input size, since the positional embeddings are then already resized).
``pretrained=False`` never touches the network. The architecture always uses QuickGELU (as OpenAI's
weights do), so a model built with ``pretrained=False`` loads a checkpoint trained from them.

``tiny=True`` builds the same architecture small (RN50: one Bottleneck per stage, width 8; ViT: 2
blocks of width 64; text: 2 blocks of width 64), keeping the 49408-token vocabulary and 77-token
context so the real tokenizer works. For tests only.

API of :class:`CLIPBackbone` (what the variants use):

Image side, both architectures
    ``arch`` ("RN50" | "ViT-B-16"), ``is_vit``, ``input_size``, ``grid_size`` (h, w of the final map),
    ``feature_dim`` (pre-projection width: 2048 RN50 / 768 ViT), ``proj_dim`` (joint image-text width:
    1024 / 512), ``last_dim`` (width of ``encode_image(...)["last"]``: 1024 / 768), ``visual``
    (the open_clip module).

    ``encode_image(x, return_stages=False) -> dict`` with
      ``"last"``   (N, last_dim): RN50 GAP of layer3; ViT class token after block L-1 (CLIP-ReID's
                   ``img_feature_last``),
      ``"global"`` (N, feature_dim): RN50 GAP of layer4; ViT ``ln_post`` of the class token,
      ``"proj"``   (N, proj_dim): RN50 attention pool; ViT ``ln_post(cls) @ proj``,
      ``"map"``    (N, feature_dim, h, w): RN50 layer4 map; ViT ``ln_post`` patch tokens as a map,
      ``"stages"`` (only with ``return_stages``): RN50 [layer1, layer2, layer3, layer4] maps
                   (256/512/1024/2048 channels at strides 4/8/16/16); ViT every block's tokens
                   (N, 1 + h*w, width) before ``ln_post``.
RN50 only
    ``stem(x)`` (3 convs + avg pool, stride 4), ``stages`` (list [layer1, layer2, layer3, layer4]),
    ``stage_dims`` ([256, 512, 1024, 2048] at full size), ``pool(map)`` (attention pool -> proj_dim),
    ``forward_features(x, return_stages=True)`` -> (layer4 map, [each stage's map]).
ViT only
    ``embed_tokens(x)`` (patch embedding + class token + positional embedding + ln_pre),
    ``blocks`` (list of residual attention blocks), ``run_blocks(tokens, start, end)``,
    ``post_norm(tokens)`` (``ln_post``), ``project(tokens)`` (``@ proj``, any leading shape),
    ``forward_tokens(x, return_layers=False)`` -> tokens after the last block (before ``ln_post``),
    and the list of every block's output when asked.
Text side
    ``token_embedding``, ``positional_embedding``, ``transformer``, ``ln_final``,
    ``text_projection``, ``attn_mask`` (causal), ``text_width`` (512), ``context_length`` (77),
    ``tokenize(texts) -> LongTensor (N, 77)`` (open_clip's tokenizer),
    ``encode_text(tokens)`` (CLIP's text encoder),
    ``encode_text_embeddings(embeddings (N, 77, text_width), eot_index (N,)) -> (N, proj_dim)``:
    runs token-embedding sequences (e.g. learnt prompts) through the text transformer and returns
    the end-of-text token's feature after ``ln_final`` and the projection.
"""

from __future__ import annotations

import copy
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError, WeightsUnavailableError

__all__ = ["CLIPBackbone", "build_clip", "clip_config", "ARCHS", "CLIP_MEAN", "CLIP_STD"]

ARCHS = ("RN50", "ViT-B-16")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_TEXT_FULL = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}
_TEXT_TINY = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
_CONFIGS = {
    ("RN50", False): {
        "embed_dim": 1024,
        "vision_cfg": {"image_size": 224, "layers": [3, 4, 6, 3], "width": 64, "patch_size": None},
        "text_cfg": _TEXT_FULL,
    },
    ("RN50", True): {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 224, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": _TEXT_TINY,
    },
    ("ViT-B-16", False): {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
        "text_cfg": _TEXT_FULL,
    },
    ("ViT-B-16", True): {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": _TEXT_TINY,
    },
}


def clip_config(arch: str, tiny: bool = False) -> dict[str, Any]:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) of ``arch``."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown CLIP backbone {arch!r}; choose one of {', '.join(ARCHS)}")
    return copy.deepcopy(_CONFIGS[(arch, bool(tiny))])


def _set_last_stride_1(visual: Any) -> None:
    """Turn layer4's downsampling off in open_clip's ModifiedResNet (anti-aliased avg-pool stride)."""
    block = visual.layer4[0]
    block.avgpool = nn.Identity()
    if block.downsample is not None and "-1" in block.downsample._modules:
        block.downsample._modules["-1"] = nn.Identity()
    block.stride = 1


def _resize_grid(pos: torch.Tensor, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> torch.Tensor:
    """(1 + h*w, C) positional embedding -> (1 + H*W, C), bicubic on the grid, first token kept."""
    if tuple(old_hw) == tuple(new_hw):
        return pos
    first, grid = pos[:1], pos[1:]
    c = grid.shape[-1]
    grid = grid.reshape(1, old_hw[0], old_hw[1], c).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new_hw), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_hw[0] * new_hw[1], c).to(pos.dtype)
    return torch.cat([first, grid], dim=0)


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _rn_grid(h: int, w: int) -> tuple[int, int]:
    """Feature grid of ModifiedResNet with last stride 1: conv1 s2, stem pool /2, layer2 /2, layer3 /2."""
    out = []
    for n in (h, w):
        n = _conv_out(n, 3, 2, 1)
        for _ in range(3):
            n //= 2
        out.append(n)
    return out[0], out[1]


class CLIPBackbone(nn.Module):
    """open_clip's CLIP (image and text towers) adapted to ReID inputs; see the module docstring."""

    def __init__(self, clip_model: nn.Module, arch: str, input_size: tuple[int, int], stride_size: int = 16):
        super().__init__()
        # open_clip's CLIP: its submodules and parameters are reached by name, which nn.Module's
        # __getattr__ types as ``Tensor | Module``; typed Any so the attribute chains check
        self.clip: Any = clip_model
        self.arch = arch
        self.is_vit = arch.startswith("ViT")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        visual: Any = clip_model.visual
        self.grid_size: tuple[int, int]
        if self.is_vit:
            patch = visual.patch_size[0]
            if not 1 <= stride_size <= patch:
                raise ConfigError(f"stride_size must be in [1, {patch}], got {stride_size}")
            old = tuple(visual.grid_size)
            h, w = self.input_size
            new = ((h - patch) // stride_size + 1, (w - patch) // stride_size + 1)
            if min(new) < 1:
                raise ConfigError(f"input_size {self.input_size} is smaller than one {patch}x{patch} patch")
            visual.conv1.stride = (stride_size, stride_size)
            with torch.no_grad():
                visual.positional_embedding = nn.Parameter(_resize_grid(visual.positional_embedding.data, old, new))
            visual.grid_size = new
            visual.image_size = self.input_size
            self.grid_size = new
            self.feature_dim = visual.transformer.width
            self.last_dim = self.feature_dim
            self.proj_dim = visual.proj.shape[1]
            self.stage_dims = [self.feature_dim] * len(visual.transformer.resblocks)
        else:
            _set_last_stride_1(visual)
            pool = visual.attnpool
            n_old = pool.positional_embedding.shape[0] - 1
            side = int(round(n_old**0.5))
            new = _rn_grid(*self.input_size)
            if min(new) < 1:
                raise ConfigError(f"input_size {self.input_size} is too small for RN50")
            with torch.no_grad():
                pool.positional_embedding = nn.Parameter(
                    _resize_grid(pool.positional_embedding.data, (side, side), new)
                )
            visual.image_size = self.input_size
            self.grid_size = new
            stages: list[Any] = self.stages  # nn.Sequential of open_clip Bottlenecks
            self.stage_dims = [layer[-1].conv3.out_channels for layer in stages]
            self.feature_dim = self.stage_dims[-1]
            self.last_dim = self.stage_dims[-2]
            self.proj_dim = pool.c_proj.out_features
        self.text_width = self.token_embedding.embedding_dim
        self.context_length = clip_model.context_length

    # ---------------------------------------------------------------- image side, RN50
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        self._need("RN50", "stem")
        return self.clip.visual.stem(x)

    @property
    def stages(self) -> list[nn.Module]:
        self._need("RN50", "stages")
        v = self.clip.visual
        return [v.layer1, v.layer2, v.layer3, v.layer4]

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        self._need("RN50", "pool")
        return self.clip.visual.attnpool(fmap)

    def forward_features(self, x: torch.Tensor, return_stages: bool = True):
        """RN50: layer4 map, plus the list of the four stage maps when ``return_stages``."""
        self._need("RN50", "forward_features")
        x = self.stem(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return (x, maps) if return_stages else x

    # ---------------------------------------------------------------- image side, ViT
    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        self._need("ViT", "embed_tokens")
        return self.clip.visual._embeds(x)

    @property
    def blocks(self) -> list[nn.Module]:
        self._need("ViT", "blocks")
        return list(self.clip.visual.transformer.resblocks)

    def run_blocks(self, tokens: torch.Tensor, start: int = 0, end: int | None = None, return_layers: bool = False):
        """Run blocks ``start:end`` on (N, L, D) tokens."""
        transformer = self.clip.visual.transformer
        batch_first = getattr(transformer, "batch_first", True)
        x = tokens if batch_first else tokens.transpose(0, 1)
        layers = []
        for blk in list(transformer.resblocks)[start:end]:
            x = blk(x)
            if return_layers:
                layers.append(x if batch_first else x.transpose(0, 1))
        x = x if batch_first else x.transpose(0, 1)
        return (x, layers) if return_layers else x

    def post_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        self._need("ViT", "post_norm")
        return self.clip.visual.ln_post(tokens)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        self._need("ViT", "project")
        return tokens @ self.clip.visual.proj

    def forward_tokens(self, x: torch.Tensor, return_layers: bool = False):
        self._need("ViT", "forward_tokens")
        return self.run_blocks(self.embed_tokens(x), return_layers=return_layers)

    # ---------------------------------------------------------------- image side, both
    def encode_image(self, x: torch.Tensor, return_stages: bool = False) -> dict[str, Any]:
        """The CLIP-ReID image features; see the module docstring for the keys."""
        if self.is_vit:
            tokens, layers = self.forward_tokens(x, return_layers=True)
            normed = self.post_norm(tokens)
            cls = normed[:, 0]
            h, w = self.grid_size
            out = {
                "last": layers[-2][:, 0] if len(layers) > 1 else tokens[:, 0],
                "global": cls,
                "proj": self.project(cls),
                "map": normed[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, h, w),
            }
            if return_stages:
                out["stages"] = layers
            return out
        fmap, maps = self.forward_features(x, return_stages=True)
        out = {
            "last": maps[-2].mean(dim=(2, 3)),
            "global": fmap.mean(dim=(2, 3)),
            "proj": self.pool(fmap),
            "map": fmap,
        }
        if return_stages:
            out["stages"] = maps
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projected image feature (N, proj_dim), like CLIP's ``encode_image``."""
        return self.encode_image(x)["proj"]

    # ---------------------------------------------------------------- text side
    @property
    def token_embedding(self) -> nn.Embedding:
        return self.clip.token_embedding

    @property
    def positional_embedding(self) -> nn.Parameter:
        return self.clip.positional_embedding

    @property
    def transformer(self) -> nn.Module:
        return self.clip.transformer

    @property
    def ln_final(self) -> nn.Module:
        return self.clip.ln_final

    @property
    def text_projection(self):
        return self.clip.text_projection

    @property
    def attn_mask(self) -> torch.Tensor:
        return self.clip.attn_mask

    def tokenize(self, texts: str | list[str]) -> torch.Tensor:
        import open_clip

        return open_clip.tokenize(texts, context_length=self.context_length)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        emb = self.token_embedding(tokens)
        return self.encode_text_embeddings(emb, tokens.argmax(dim=-1))

    def encode_text_embeddings(self, embeddings: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """(N, L, text_width) token embeddings -> (N, proj_dim) text features at ``eot_index``."""
        x = embeddings + self.positional_embedding[: embeddings.shape[1]].to(embeddings.dtype)
        mask = self.attn_mask
        if mask is not None:
            mask = mask[: x.shape[1], : x.shape[1]]
        x = self.transformer(x, attn_mask=mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index.to(x.device)]
        proj = self.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def image_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"clip.visual.{n}", p) for n, p in self.clip.visual.named_parameters()]

    def text_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [
            (f"clip.{n}", p)
            for n, p in self.clip.named_parameters()
            if not n.startswith("visual.") and n != "logit_scale" and n != "logit_bias"
        ]

    def _need(self, kind: str, what: str) -> None:
        if (kind == "ViT") != self.is_vit:
            raise AttributeError(f"CLIPBackbone.{what} exists for {kind} backbones only (this is {self.arch})")


# -------------------------------------------------------------------- weights
_HINT = (
    "pass a local file with pretrained=PATH (CLI: --set model.pretrained=PATH) or build without "
    "weights with pretrained=False"
)


def _cached_openai_file(arch: str) -> str | None:
    """The OpenAI weights of ``arch`` if open_clip's download cache already holds them."""
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch, "openai")
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
            try_to_load_from_cache = None  # type: ignore[assignment]  # optional import fallback
        if try_to_load_from_cache is not None:
            repo, filename = os.path.split(hub)
            for name in ([filename] if filename else []) + [
                "open_clip_model.safetensors",
                "open_clip_pytorch_model.bin",
            ]:
                found = try_to_load_from_cache(repo, name)
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    url = cfg.get("url", "")
    if url:
        cached = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if cached.is_file():
            return str(cached)
    return None


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    previous = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def _download_openai(arch: str) -> str:
    cached = _cached_openai_file(arch)
    if cached:
        return cached
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or not _hub_reachable():
        raise WeightsUnavailableError(
            f"the OpenAI CLIP {arch} weights are not in the local cache and the network is unreachable; {_HINT}"
        )
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    try:
        path = download_pretrained(get_pretrained_cfg(arch, "openai"))
    except Exception as exc:  # network libraries raise many types; all mean "no weights"
        raise WeightsUnavailableError(
            f"could not download the OpenAI CLIP {arch} weights ({type(exc).__name__}); {_HINT}"
        ) from None
    if not path:
        raise WeightsUnavailableError(f"open_clip has no OpenAI weights for {arch}; {_HINT}")
    return path


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"CLIP weights file not found: {path}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            try:
                sd = torch.load(str(p), map_location="cpu", weights_only=True)
            except Exception:
                # OpenAI's original release is a TorchScript archive (no pickled Python code)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sd = torch.jit.load(str(p), map_location="cpu").state_dict()
    except (InputNotFoundError, CheckpointError):
        raise
    except Exception as exc:
        raise CheckpointError(
            f"cannot read CLIP weights from {path} ({type(exc).__name__}: {str(exc).strip()[:150]})"
        ) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path} does not hold a CLIP state dict")
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    if any(k.startswith("backbone.clip.") for k in sd):  # a reidpipe checkpoint: take its CLIP
        sd = {k[len("backbone.clip.") :]: v for k, v in sd.items() if k.startswith("backbone.clip.")}
    for extra in ("input_resolution", "context_length", "vocab_size"):
        sd.pop(extra, None)
    return sd


_POS_KEYS = ("visual.positional_embedding", "visual.attnpool.positional_embedding")


def _load_weights(model: nn.Module, path: str, arch: str, grid: tuple[int, int]) -> None:
    """Load a CLIP state dict into the (already ReID-adapted) ``model``; positional embeddings of a
    square grid (OpenAI's 7x7 / 14x14) are resized bicubically to ``grid``."""
    sd = _read_state_dict(path)
    own = model.state_dict()
    for key in _POS_KEYS:
        if key in sd and key in own and sd[key].shape != own[key].shape and sd[key].shape[1:] == own[key].shape[1:]:
            n = sd[key].shape[0] - 1
            side = int(round(n**0.5))
            if side * side != n:
                raise CheckpointError(
                    f"{path}: {key} has {n} grid tokens, not a square grid; build the model "
                    f"at the input size these weights were trained at"
                )
            sd[key] = _resize_grid(sd[key].float(), (side, side), grid)
    missing = [k for k in own if k not in sd and not k.startswith("logit_bias")]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        what = (
            f"missing {missing[:2]}"
            if missing
            else f"unexpected {unexpected[:2]}"
            if unexpected
            else f"shape mismatch at {bad[:2]}"
        )
        raise CheckpointError(f"{path} is not a CLIP {arch} state dict ({what})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)


def build_clip(
    arch: str = "RN50",
    *,
    input_size: tuple[int, int] = (256, 128),
    pretrained: bool | str = True,
    tiny: bool = False,
    stride_size: int = 16,
) -> CLIPBackbone:
    """Build open_clip's ``arch`` CLIP adapted to ``input_size`` and load weights (module docstring)."""
    from open_clip.model import CLIP

    cfg = clip_config(arch, tiny)
    if pretrained is not False and pretrained is not True and not isinstance(pretrained, (str, os.PathLike)):
        raise ConfigError(f"pretrained must be True, False or a file path, got {pretrained!r}")
    if tiny and pretrained is True:
        raise ConfigError("tiny=True has no published weights; use pretrained=False")
    weights = None
    if pretrained is True:
        weights = _download_openai(arch)  # before building: fail fast when offline
    elif pretrained:
        weights = str(pretrained)
        if not Path(weights).is_file():
            raise InputNotFoundError(f"CLIP weights file not found: {weights}")
    model = CLIP(**cfg, quick_gelu=True)
    backbone = CLIPBackbone(model, arch, input_size, stride_size=stride_size)
    if weights is not None:
        _load_weights(model, weights, arch, backbone.grid_size)
    return backbone
