"""``reidpipe gallery info | check | prune | forget``: look after a persistent gallery."""

from __future__ import annotations

import argparse

NAME = "gallery"
HELP = (
    "Look after a gallery (reidpipe run --gallery): info (model, size, cameras, time span), check "
    "(integrity), prune --older-than AGE, forget --identity N."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe import limits
    from reidpipe.pipeline.validate import flag_type, integer

    parser.add_argument("action", choices=["info", "check", "prune", "forget"], help="what to do")
    parser.add_argument("--gallery", required=True, metavar="DIR", help="the gallery folder")
    parser.add_argument("--older-than", metavar="AGE", help="prune: identities last seen before now - AGE (30d, 12h)")
    parser.add_argument(
        "--identity",
        type=flag_type(integer(0, limits.MAX_IDENTITY)),
        metavar="N",
        help="forget: the global identity to delete",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from reidpipe.errors import UsageError

    if args.action == "prune" and args.older_than is None:
        raise UsageError("gallery prune needs --older-than AGE (e.g. 30d)")
    if args.action == "forget" and args.identity is None:
        raise UsageError("gallery forget needs --identity N")
    from reidpipe.pipeline.gallery.store import database_errors

    with database_errors(args.gallery):  # a damaged database: one line, exit 5
        if args.action in ("info", "check"):
            return _read(args)
        return _delete(args)


def _read(args: argparse.Namespace) -> int:
    import json

    from reidpipe.errors import MalformedInputError
    from reidpipe.pipeline.gallery.info import check, format_info, info
    from reidpipe.pipeline.gallery.store import Store

    with Store.open(args.gallery, strict=args.action != "check") as store:  # check lists the damage itself
        if args.action == "info":
            d = info(store)
            print(json.dumps(d) if args.json else format_info(d))
            return 0
        problems = check(store)
    if args.json:
        print(json.dumps({"gallery": args.gallery, "ok": not problems, "problems": problems}))
    if problems:
        raise MalformedInputError(f"gallery {args.gallery} is damaged: {'; '.join(problems)}")
    if not args.json:
        print(f"gallery {args.gallery}: ok")
    return 0


def _delete(args: argparse.Namespace) -> int:
    import json
    import time

    from reidpipe.errors import UsageError
    from reidpipe.limits import MAX_SECONDS
    from reidpipe.pipeline.gallery.index import Indexes
    from reidpipe.pipeline.gallery.retention import forget, prune
    from reidpipe.pipeline.gallery.store import Store
    from reidpipe.pipeline.gallery.times import parse_duration

    age = None
    if args.action == "prune":
        age = parse_duration(args.older_than)
        if age is None:
            raise UsageError(
                f"--older-than {args.older_than!r}: expected an age such as 30d, 12h, 90m or seconds, at most {MAX_SECONDS:g} s"
            )
    with Store.open(args.gallery, write=True) as store:
        model = store.model
        indexes = Indexes.open(store, model.dim, save=True) if model is not None else None
        if args.action == "prune":
            assert age is not None
            removed = prune(store, indexes, time.time() - age)
        else:
            removed = forget(store, indexes, args.identity)
            if not removed.identities:
                raise UsageError(f"--identity {args.identity}: no such identity in gallery {args.gallery}")
    d = removed.to_json()
    print(json.dumps(d) if args.json else f"removed {d['identities']} identities, {d['tracklets']} tracklets")
    return 0
