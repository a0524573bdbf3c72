"""Sub-commands of the ``reidpipe`` CLI.

Each module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``.
Modules must stay cheap to import (no torch, cv2, ultralytics, open_clip at module level) so that
``reidpipe --help`` answers instantly; heavy imports go inside ``main``.
"""

COMMANDS = [
    "run",
    "demo",
    "score",
    "report",
    "search",
    "gallery",
    "train",
    "adapt",
    "eval",
    "export",
    "quantize",
    "bench",
]
