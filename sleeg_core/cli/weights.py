"""`sleeg weights list | download`: known public checkpoints, verified downloads into the cache,
and the shipped heads that go with them."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from sleeg_core.common.errors import SleegError
from sleeg_core.model import weights
from sleeg_core.model.ensemble_file import EnsembleFile, is_ensemble_file
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.shipped_heads import resolve_head, shipped_heads


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "weights", help="list and download known segmentor checkpoints; list the shipped heads"
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    actions.add_parser(
        "list",
        help="known checkpoints with URL, sha256, licence and cache state, and the shipped heads",
    )
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
        print_shipped_heads()
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


def print_shipped_heads() -> None:
    """Each shipped head (sleeg_core.model.shipped_heads): its segmentor, the known weights
    for it, its recipe in brief and its file."""
    names = shipped_heads()
    print("shipped heads (--head NAME, the node's head:=NAME):" if names else "shipped heads: none")
    for name in names:
        path = resolve_head(name)
        if is_ensemble_file(path):
            print_ensemble(name, path)
            continue
        try:
            head = HeadFile.load(path)
        except SleegError as err:  # listed, not fatal: the other heads still show
            print(f"{name}  unreadable: {err}\n    file:    {path}")
            continue
        known = [w.name for w in weights.KNOWN_WEIGHTS.values() if w.segmentor == head.segmentor]
        branches = len(head.head_config.branch_dilations())
        steps = head.train_config.get("iterations", "?")
        print(
            f"{name}  (segmentor: {head.segmentor}; weights: {', '.join(known) or 'none known'})  "
            f"{branches} branch{'es' if branches > 1 else ''}, λ = {head.lam:g}, {steps} steps"
        )
        print(f"    file:    {path}")


def print_ensemble(name: str, path: Path) -> None:
    """A shipped ensemble file: each member's weights and weighted heads, and its file."""
    try:
        spec = EnsembleFile.load(path)
    except SleegError as err:
        print(f"{name}  unreadable: {err}\n    file:    {path}")
        return
    total = spec.weight_total()
    members = " + ".join(
        f"{m.weights} [{', '.join(f'{h.head} {h.weight / total:g}' for h in m.heads)}]"
        for m in spec.members
    )
    print(f"{name}  (ensemble: {members})")
    print(f"    file:    {path}")
