"""``reidpipe report``: one self-contained HTML page to review a run's identities."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = (
    "Write an HTML review of a run (identity gallery with crops, uncertain links first, timeline per "
    "camera, run summary; with --gt the scores and the wrong links marked) from its output folder."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the --output folder of reidpipe run / demo")
    parser.add_argument(
        "--gt",
        nargs="+",
        metavar="[CAM=]GT_TXT",
        help="MOTChallenge gt.txt per camera (as reidpipe score --gt): adds the scores and marks the wrong links",
    )
    parser.add_argument("--output", "-o", metavar="HTML", help="where the page goes (default OUT_DIR/report.html)")


def main(args: argparse.Namespace) -> int:
    import sys

    from reidpipe.pipeline.io.report import write_report

    path = write_report(args.out_dir, gt=args.gt, output=args.output)
    print(f"report written to {path}", file=sys.stderr)
    print(path)
    return 0
