"""``reidpipe quantize``: an int8 ONNX detector (YOLOX) or ReID embedder calibrated on your own video."""

from __future__ import annotations

import argparse

NAME = "quantize"
HELP = (
    "Quantize an ONNX YOLOX detector or ReID embedder to int8 (ONNX Runtime static quantization, QDQ, "
    "calibrated on frames of --calib VIDEO; an embedder on the person crops --detector finds there); "
    "prints the int8 model's agreement with fp32 (detector: person recall/precision; embedder: cosine)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe import limits
    from reidpipe.pipeline.validate import flag_type, integer

    parser.add_argument("--model", required=True, metavar="ONNX", help="the fp32 model: a YOLOX or a ReID .onnx")
    parser.add_argument("--calib", required=True, metavar="VIDEO", help="a video (or image folder) of your cameras")
    parser.add_argument("--output", "-o", required=True, metavar="ONNX", help="where to write the int8 model")
    parser.add_argument(
        "--frames",
        type=flag_type(integer(1, limits.MAX_CALIBRATION_FRAMES)),
        default=64,
        metavar="N",
        help="frames taken evenly over the video (default 64)",
    )
    parser.add_argument(
        "--detector",
        metavar="PATH",
        help="embedder: the detector that finds the calibration crops (a YOLOX .onnx or ultralytics weights)",
    )
    parser.add_argument(
        "--detections", metavar="DET_TXT", help="embedder: the video's MOTChallenge det.txt instead of --detector"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args: argparse.Namespace) -> int:
    import json
    import logging

    from reidpipe.errors import UsageError
    from reidpipe.pipeline.models.quantize import quantize_model

    if not args.verbose:  # onnxruntime.quantization logs its notes through the root logger
        logging.getLogger().setLevel(logging.ERROR)
    if args.detector and args.detections:
        raise UsageError("--detections replaces --detector; give one of them")
    detector = None
    if args.detector or args.detections:
        from reidpipe.pipeline.config import PipelineConfig
        from reidpipe.pipeline.models.detect import load_detector

        cfg = PipelineConfig(detector=args.detector or "", device="cpu")
        detector = load_detector(cfg, args.detections)
    result = quantize_model(args.model, args.calib, args.output, frames=args.frames, detector=detector)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    a = result["agreement"]
    if result["kind"] == "detector":
        figures = f"person recall {a['recall']}, precision {a['precision']} vs fp32 ({a['reference_boxes']} boxes)"
    else:
        figures = f"cosine vs fp32 mean {a['mean_cosine']}, min {a['min_cosine']} ({a['crops']} crops)"
    print(
        f"int8 {result['kind']} -> {result['output']} (calibrated on {result['calibration_frames']} frames of "
        f"{result['calib']}); held-out frames: {figures}"
    )
    return 0
