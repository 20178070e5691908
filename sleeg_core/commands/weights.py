"""`sleeg weights list | download`: known public checkpoints, verified downloads into the cache."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from sleeg_core import weights


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("weights", help="list and download known segmentor checkpoints")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    actions.add_parser("list", help="known checkpoints with URL, sha256, licence and cache state")
    dl = actions.add_parser(
        "download", help="download (resumable) and verify a checkpoint, or register a local file"
    )
    dl.add_argument("name", choices=sorted(weights.KNOWN_WEIGHTS), help="checkpoint name")
    dl.add_argument(
        "--dest", type=Path, help="folder to put the file in (default: the weights cache)"
    )
    dl.add_argument("--from", dest="source", type=Path, help="use this file instead of downloading")
    dl.add_argument("--url", help="download from this mirror instead of the public URL")
    dl.add_argument("--sha256", help="expected digest when --url serves a different file")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for entry in weights.KNOWN_WEIGHTS.values():
            print(f"{entry.name}  (segmentor: {entry.segmentor})  {entry.note}")
            print(f"    url:     {entry.url}")
            print(f"    sha256:  {entry.sha256}")
            print(f"    licence: {entry.licence}")
            print(f"    cached:  {weights.cached(entry) or 'no'}")
        print(f"cache: {weights.cache_dir()}")
        return 0
    entry = weights.known(args.name)
    if args.sha256:
        entry = replace(entry, sha256=args.sha256)
    dest = args.dest or weights.cache_dir()
    if args.source:
        path = weights.register(entry, args.source, dest)
    else:
        path = weights.download(entry, dest, url=args.url, progress=not args.quiet)
    print(path)
    return 0
