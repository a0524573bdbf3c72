"""Feature extraction over a dataset's query and gallery, and their scoring (CMC / mAP, re-ranking)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from reidpipe.errors import DatasetError
from reidpipe.reid.datasets.base import ImageRecord, ReIDDataset
from reidpipe.reid.datasets.images import ImageDataset
from reidpipe.reid.metrics import distance_chunks, evaluate_ranking
from reidpipe.reid.rerank import rerank_chunks
from reidpipe.reid.transforms import ReIDTransform


@torch.no_grad()
def extract_model_features(
    model,
    records: list[ImageRecord],
    *,
    device,
    batch_size: int = 128,
    workers: int = 0,
    input_size=None,
    amp: bool = False,
    progress: bool = False,
) -> np.ndarray:
    size = tuple(input_size or model.input_size)
    ds = ImageDataset(records, ReIDTransform(size, model.pixel_mean, model.pixel_std))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = model.training
    model.eval()
    out = []
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="features", leave=False, dynamic_ncols=True)
    try:
        for batch in it:
            x = batch["images"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                f = model.embed(x)
            out.append(f.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.embed_dim), np.float32)


def extract_callable_features(
    embed_bgr: Callable[[list[np.ndarray]], np.ndarray],
    records: list[ImageRecord],
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Features from a function of BGR uint8 crops (an ONNX embedder)."""
    import cv2

    feats = []
    rng = range(0, len(records), batch_size)
    if progress:
        from tqdm import tqdm

        rng = tqdm(rng, desc="features", leave=False, dynamic_ncols=True)
    for s in rng:
        crops = []
        for r in records[s : s + batch_size]:
            img = cv2.imread(r.path, cv2.IMREAD_COLOR)
            if img is None:
                raise DatasetError(f"cannot read image {r.path}")
            crops.append(img)
        feats.append(np.asarray(embed_bgr(crops), dtype=np.float32))
    return np.concatenate(feats) if feats else np.zeros((0, 1), np.float32)


def score(
    qf: np.ndarray,
    gf: np.ndarray,
    dataset: ReIDDataset,
    *,
    rerank: bool = False,
    metric: str = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    max_rank: int = 50,
) -> dict:
    q_pids = [r.pid for r in dataset.query]
    g_pids = [r.pid for r in dataset.gallery]
    q_cams = [r.camid for r in dataset.query]
    g_cams = [r.camid for r in dataset.gallery]
    t0 = time.perf_counter()
    if rerank:
        blocks = rerank_chunks(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value)
    else:
        blocks = distance_chunks(qf, gf, metric=metric)
    res = evaluate_ranking(blocks, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, junk_pids=dataset.junk_pids)
    res["rerank"] = bool(rerank)
    res["ranking_seconds"] = round(time.perf_counter() - t0, 3)
    return res


def evaluate_model(
    model,
    dataset: ReIDDataset,
    *,
    device,
    batch_size: int = 128,
    workers: int = 0,
    rerank: bool = False,
    metric: str = "euclidean",
    amp: bool = False,
    progress: bool = False,
    **kw,
) -> dict:
    if not dataset.query or not dataset.gallery:
        raise DatasetError(f"{dataset.name}: no query/gallery split to evaluate on under {dataset.root}")
    qf = extract_model_features(
        model, dataset.query, device=device, batch_size=batch_size, workers=workers, amp=amp, progress=progress
    )
    gf = extract_model_features(
        model, dataset.gallery, device=device, batch_size=batch_size, workers=workers, amp=amp, progress=progress
    )
    return score(qf, gf, dataset, rerank=rerank, metric=metric, **kw)


def evaluate_run(model, dataset: ReIDDataset, cfg: dict, *, device, amp: bool = False) -> dict:
    """:func:`evaluate_model` with a training config's ``eval`` settings and test batch size."""
    ev, data = cfg["eval"], cfg["data"]
    return evaluate_model(
        model,
        dataset,
        device=device,
        batch_size=int(data["test_batch_size"]),
        workers=int(data.get("workers") or 0),
        rerank=bool(ev.get("rerank")),
        metric=ev.get("metric", "euclidean"),
        amp=amp,
        k1=int(ev["rerank_k1"]),
        k2=int(ev["rerank_k2"]),
        lambda_value=float(ev["rerank_lambda"]),
        max_rank=int(ev["max_rank"]),
    )


#: the fallback link threshold of an exported model is kept inside these bounds
LINK_THRESHOLD_BOUNDS = (0.3, 0.95)


def cross_camera_pairs(features: np.ndarray, pids: list[int], cams: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of every pair of images from different cameras, as the linker compares tracklets (each
    camera's mean feature subtracted, rows re-normalised: camera centring,
    :mod:`reidpipe.pipeline.link.features`), and whether the pair is one person."""
    from reidpipe.pipeline.link.features import camera_means, centred, normalize_rows

    X = normalize_rows(np.array(features, dtype=np.float32, copy=True))
    cam_ids = sorted(set(cams))
    code = np.array([cam_ids.index(c) for c in cams])
    X = centred(X, code, camera_means(X, code, len(cam_ids)))
    p = np.asarray(pids)
    iu = np.triu_indices(len(p), k=1)
    cross = code[iu[0]] != code[iu[1]]
    return (X @ X.T)[iu][cross], (p[iu[0]] == p[iu[1]])[cross]


def false_match_share(features: np.ndarray, pids: list[int], cams: list[int], threshold: float) -> float:
    """Share of the cross-camera pairs of two different people whose cosine reaches ``threshold``."""
    sims, same = cross_camera_pairs(features, pids, cams)
    return float((sims[~same] >= threshold).mean()) if (~same).any() else 0.0


def threshold_for_share(features: np.ndarray, pids: list[int], cams: list[int], share: float) -> float:
    """The cosine that the same share of different-people pairs reaches (bounded to
    ``LINK_THRESHOLD_BOUNDS``). A fine-tuned model's fallback linking threshold: it lets through as
    many wrong cross-camera pairs as the given model did at its own threshold, so the linker's
    fallback keeps the strictness it was measured with while the similarity scale moves."""
    sims, same = cross_camera_pairs(features, pids, cams)
    others = np.sort(sims[~same])
    if not others.size:
        return float(np.clip(0.7, *LINK_THRESHOLD_BOUNDS))
    value = float(np.quantile(others, 1.0 - min(max(share, 0.0), 1.0)))
    return float(np.clip(value, *LINK_THRESHOLD_BOUNDS))
