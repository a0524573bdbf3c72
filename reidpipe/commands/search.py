"""``reidpipe search``: the identities of a gallery most similar to a person image or to an identity."""

from __future__ import annotations

import argparse

NAME = "search"
HELP = (
    "Person search in a gallery (reidpipe run --gallery): the identities most similar to a crop "
    "(embedded with the gallery's own model) or to a known identity, with where and when each was seen."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe import limits
    from reidpipe.pipeline.validate import flag_type, integer

    parser.add_argument("--gallery", required=True, metavar="DIR", help="the gallery folder")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", metavar="JPG", help="a crop of one person")
    what.add_argument(
        "--identity",
        type=flag_type(integer(0, limits.MAX_IDENTITY)),
        metavar="N",
        help="a global identity id of the gallery",
    )
    parser.add_argument(
        "--top",
        type=flag_type(integer(1, limits.MAX_KNN)),
        default=5,
        metavar="K",
        help="identities to list (default 5)",
    )
    parser.add_argument(
        "--reid-weights",
        metavar="PATH",
        help="--image: the gallery's model file when it moved (refused if it is another model)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from reidpipe.pipeline.gallery.store import database_errors

    with database_errors(args.gallery):  # a damaged database: one line, exit 5
        return _search(args)


def _search(args: argparse.Namespace) -> int:
    import json

    from reidpipe.pipeline.gallery.search import by_identity, by_image, format_hits, open_for_search

    store, indexes = open_for_search(args.gallery)
    try:
        if args.image is not None:
            hits = by_image(store, indexes, args.image, args.top, args.reid_weights)
        else:
            hits = by_identity(store, indexes, args.identity, args.top)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"gallery": str(args.gallery), "results": [h.to_json() for h in hits]}))
    else:
        print(format_hits(hits))
    return 0
