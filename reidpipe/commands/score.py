"""``reidpipe score``: per-camera HOTA/MOTA/IDF1, multi-camera IDF1 and cross-camera link F1."""

from __future__ import annotations

import argparse

NAME = "score"
HELP = (
    "Score a trajectories.json against MOTChallenge ground truth: per-camera HOTA, MOTA, IDF1; "
    "multi-camera IDF1/IDP/IDR (global ids); cross-camera link precision/recall/F1."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pred",
        required=True,
        nargs="+",
        metavar="JSON",
        help="trajectories.json written by reidpipe run/demo; several runs of one gallery (global ids) "
        "are scored together",
    )
    parser.add_argument(
        "--gt",
        required=True,
        nargs="+",
        metavar="[CAM=]GT_TXT",
        help="one MOTChallenge gt.txt per camera (ids global across cameras): CAM=PATH, or plain "
        "paths given in the order of the cameras in the predictions' sources",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")


def main(args: argparse.Namespace) -> int:
    import json

    from reidpipe.pipeline.score import format_report, score

    res = score(args.pred, args.gt)
    print(json.dumps(res, indent=2) if args.json else format_report(res))
    return 0
