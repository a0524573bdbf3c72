"""``reidpipe export``: a trained checkpoint's ``embed`` as an ONNX model the pipeline can run."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = (
    "Export a reidpipe checkpoint's embedding (embed) to ONNX with a dynamic batch axis; input "
    "'images' (N,3,H,W float32 RGB, normalised with the model's mean/std after /255), output "
    "'features' (N,D, L2-normalised); checks the file with onnxruntime against the model."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe import limits
    from reidpipe.pipeline.validate import flag_type, integer

    parser.add_argument(
        "--weights",
        required=True,
        metavar="CKPT",
        help="reidpipe checkpoint (.pt or .safetensors) written by `reidpipe train`",
    )
    parser.add_argument(
        "--output", "-o", required=True, metavar="ONNX", help="where to write the model (e.g. model.onnx)"
    )
    parser.add_argument(
        "--opset", type=flag_type(integer(1, 10_000)), default=17, metavar="N", help="ONNX opset version (default 17)"
    )
    parser.add_argument(
        "--batch-size",
        type=flag_type(integer(1, limits.MAX_EXPORT_BATCH)),
        default=1,
        metavar="N",
        help="batch of the example input used to trace the model; the batch axis stays dynamic (default 1)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check against the PyTorch model")


def main(args: argparse.Namespace) -> int:
    from reidpipe.reid.checkpoint import load_checkpoint
    from reidpipe.reid.export import export_onnx

    _refuse_overwriting_the_input(args.weights, args.output)
    model = load_checkpoint(args.weights, map_location="cpu")
    report = export_onnx(model, args.output, opset=args.opset, batch_size=args.batch_size, verify=not args.no_verify)
    h, w = report.input_size
    print(
        f"exported {model.variant} -> {report.path} (opset {report.opset}, input images: N x 3 x {h} x {w}, "
        f"output features: N x {report.embed_dim})"
    )
    if report.max_abs_diff is not None:
        sizes = ", ".join(str(s) for s in report.checked_batch_sizes)
        print(f"onnxruntime check: max abs diff vs embed = {report.max_abs_diff:.3g} (batch sizes {sizes})")
    return 0


def _refuse_overwriting_the_input(weights: str, output: str) -> None:
    """``-o`` naming the checkpoint itself (also through a link) would replace it with the ONNX model."""
    import os

    from reidpipe.errors import UsageError

    try:
        same = os.path.samefile(weights, output)
    except OSError:  # one of them does not exist: they are not the same file
        same = False
    if same:
        raise UsageError(
            f"--output {output} is the checkpoint given to --weights: it would be overwritten; choose another file"
        )
