"""``reidpipe eval``: mAP / CMC of a reidpipe checkpoint or an ONNX ReID model on a dataset's query/gallery."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "eval"
HELP = "evaluate a ReID model (reidpipe checkpoint or ONNX) on a dataset: mAP, CMC rank-1/5/10"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reidpipe import limits
    from reidpipe.pipeline.validate import flag_type, integer

    p.add_argument("--weights", required=True, help="reidpipe checkpoint (.pt/.pth/.safetensors) or ONNX model")
    p.add_argument(
        "--dataset",
        required=True,
        help="market1501, dukemtmcreid, msmt17, cuhk03_labeled, "
        "cuhk03_detected, occluded_duke, partial_reid, partial_ilids, custom",
    )
    p.add_argument("--data-root", required=True, help="folder holding the dataset in its official layout")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--output", default=None, help="write the metrics as JSON here")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--batch", type=flag_type(integer(1, limits.MAX_BATCH)), default=128, help="images per forward pass")
    p.add_argument(
        "--metric",
        choices=("euclidean", "cosine"),
        default="euclidean",
        help="distance (euclidean = squared Euclidean on the L2-normalised embeddings)",
    )
    p.add_argument(
        "--input-size",
        type=flag_type(integer(1, limits.MAX_REID_SIDE)),
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="ONNX only: input size when the model does not say",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _onnx_embedder(args):
    from reidpipe.pipeline.config import PipelineConfig
    from reidpipe.pipeline.models.embed import load_embedder

    cfg = PipelineConfig(
        reid="onnx",
        reid_weights=str(args.weights),
        embed_batch=args.batch,
        device="cpu" if args.device == "auto" else args.device,
        reid_input_size=tuple(args.input_size) if args.input_size else None,
    )
    return load_embedder(cfg)


def main(args: argparse.Namespace) -> int:
    import time

    from reidpipe.errors import DatasetError, InputNotFoundError, OutputError
    from reidpipe.reid.datasets.readers import build_dataset
    from reidpipe.trainers.evaluation import extract_callable_features, extract_model_features, score
    from reidpipe.trainers.hooks import write_json_atomic
    from reidpipe.trainers.runtime import resolve_device

    weights = Path(args.weights)
    if not weights.exists():
        raise InputNotFoundError(f"--weights {weights} does not exist")
    dataset = build_dataset(args.dataset, args.data_root)
    if not dataset.query or not dataset.gallery:
        raise DatasetError(f"{dataset.name}: no query/gallery split under {dataset.root}")
    print(dataset.table())
    progress = not args.no_progress
    t0 = time.perf_counter()
    if weights.suffix.lower() == ".onnx":
        emb = _onnx_embedder(args)
        qf = extract_callable_features(emb.embed, dataset.query, args.batch, progress)
        gf = extract_callable_features(emb.embed, dataset.gallery, args.batch, progress)
        model_info = {"kind": "onnx", "input_size": list(emb.input_size), "embed_dim": int(qf.shape[1])}
    else:
        from reidpipe.reid.checkpoint import load_checkpoint

        device = resolve_device(args.device)
        model = load_checkpoint(weights, map_location=device)
        amp = device.type == "cuda"
        qf = extract_model_features(
            model, dataset.query, device=device, batch_size=args.batch, amp=amp, progress=progress
        )
        gf = extract_model_features(
            model, dataset.gallery, device=device, batch_size=args.batch, amp=amp, progress=progress
        )
        model_info = {
            "kind": "checkpoint",
            "variant": model.variant,
            "input_size": list(model.input_size),
            "embed_dim": int(model.embed_dim),
        }
    t_feat = time.perf_counter() - t0
    res = score(qf, gf, dataset, rerank=args.rerank, metric=args.metric)
    res.update(
        {
            "weights": str(weights),
            "dataset": dataset.name,
            "data_root": str(dataset.root),
            "model": model_info,
            "feature_seconds": round(t_feat, 3),
            "images_per_second": round((len(qf) + len(gf)) / max(t_feat, 1e-9), 2),
        }
    )
    print(
        f"{dataset.name}{' (re-ranked)' if args.rerank else ''}: mAP {res['mAP']:.4f}  rank-1 {res['rank1']:.4f}  "
        f"rank-5 {res['rank5']:.4f}  rank-10 {res['rank10']:.4f}  mINP {res['mINP']:.4f}  "
        f"({res['num_query']} queries, {res['num_gallery']} gallery images)"
    )
    if args.output:
        out = Path(args.output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out, res)
        except OSError as exc:
            raise OutputError(f"cannot write --output {out}: {exc.strerror or exc}") from None
    else:
        print(json.dumps({k: res[k] for k in ("mAP", "rank1", "rank5", "rank10", "num_query", "num_gallery")}))
    return 0
