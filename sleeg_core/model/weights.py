"""Known public segmentor checkpoints, and verified, resumable downloads of them.

A download goes to `<dest>/<file>.part` (resumed with an HTTP Range request when a partial file
exists), is checked against the known sha256 and only then renamed to `<dest>/<file>`.

Wherever a segmentor checkpoint is taken (`--weights`, the node's `weights`), `resolve` accepts a
file path or a known name. A value that names an existing file is that file; otherwise a known
name (`enet_cityscapes`) means `<cache>/<filename>`, where `<cache>` is `$SLEEG_CACHE/weights`,
else `$XDG_CACHE_HOME/sleeg/weights`, else `~/.cache/sleeg/weights`. A cached file is checked
against the sha256 at every use; when it is absent (or fails the check) it is copied from
`$SLEEG_SHARED/data/weights/<name>/<filename>` (default: `shared/` next to the source checkout)
if that copy is verified, else downloaded. Any other value is a path, used as given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sleeg_core.common.errors import ModelLoadError, SleegError

CHUNK = 1 << 20
REPO = Path(__file__).resolve().parents[2]  # the source checkout (or site-packages)


@dataclass(frozen=True)
class KnownWeights:
    """A public checkpoint: which segmentor it is for, where it comes from, and its digest."""

    name: str
    segmentor: str
    filename: str
    url: str
    sha256: str
    licence: str
    note: str


KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    w.name: w
    for w in (
        KnownWeights(
            name="enet_cityscapes",
            segmentor="enet",
            filename="enet.pth",
            url="https://github.com/zh320/realtime-semantic-segmentation-pytorch/releases/download/v1.0/enet.pth",
            sha256="a2813d0505a689c80e84f49c218a853b7bf37c70b862b81ccfae58ec6dd138be",
            licence="Apache-2.0 (zh320/realtime-semantic-segmentation-pytorch)",
            note="ENet, Cityscapes 19 classes, val mIoU 71.3",
        ),
        KnownWeights(
            name="espnet_cityscapes",
            segmentor="espnet",
            filename="espnet_p_2_q_8.pth",
            url="https://github.com/sacmehta/ESPNet/raw/master/pretrained/decoder/espnet_p_2_q_8.pth",
            sha256="343b0e77e8545d36113c4f3efbf1ee349256f25c97c9f9d5ddefe45f2f49763e",
            licence="MIT (sacmehta/ESPNet)",
            note="ESPNet v1 p=2 q=8, Cityscapes 19 classes + background",
        ),
        KnownWeights(
            name="dabnet_cityscapes",
            segmentor="dabnet",
            filename="DABNet_cityscapes.pth",
            url="https://github.com/IssamLaradji/CBStyling/raw/"
            "4220ee1618f290125d6b29af64c4aacd994cea88/pretrained/DABNet_cityscapes.pth",
            sha256="9a8ecc415e9199f5ebd26e21abdd10facd7010d209c812555f98b6b95766aa40",
            licence="research use, attribute DABNet authors (Li et al., BMVC 2019; "
            "architecture Reagan1311/DABNet, MIT; file from IssamLaradji/CBStyling, no licence)",
            note="DABNet, Cityscapes 19 classes, epoch 1000 (no official release)",
        ),
    )
}


def known(name: str) -> KnownWeights:
    """The known checkpoint called `name`, or a SleegError listing the known ones."""
    if name not in KNOWN_WEIGHTS:
        raise SleegError(f"unknown weights '{name}'; known: {', '.join(KNOWN_WEIGHTS)}")
    return KNOWN_WEIGHTS[name]


def named(value: str | Path) -> KnownWeights | None:
    """The known checkpoint `value` names, or None for a path (an existing file always is)."""
    text = str(value)
    if text not in KNOWN_WEIGHTS or Path(text).exists():
        return None
    return KNOWN_WEIGHTS[text]


def cache_dir() -> Path:
    """Where known checkpoints are kept (see the module docstring for the rule)."""
    if root := os.environ.get("SLEEG_CACHE"):
        return Path(root) / "weights"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sleeg" / "weights"


def shared_copy(entry: KnownWeights) -> Path:
    """Where the shared data folder ($SLEEG_SHARED, else the checkout's ../shared) has `entry`."""
    shared = Path(os.environ.get("SLEEG_SHARED") or REPO.parent / "shared")
    return shared / "data" / "weights" / entry.name / entry.filename


def cached(entry: KnownWeights) -> Path | None:
    """The verified cached file of `entry`, or None when it is absent or fails its sha256."""
    path = cache_dir() / entry.filename
    return path if path.is_file() and sha256_of(path) == entry.sha256 else None


def fetch(entry: KnownWeights) -> Path:
    """The cached file of `entry`: copied from the shared folder or downloaded when missing."""
    if path := cached(entry):
        return path
    dest = cache_dir()
    shared = shared_copy(entry)
    if shared.is_file() and sha256_of(shared) == entry.sha256:
        try:
            return register(entry, shared, dest)
        except OSError as err:
            raise ModelLoadError("weights", f"cannot copy {shared} into {dest}: {err}") from err
    try:
        return download(entry, dest)
    except SleegError as err:
        state = "absent" if not (dest / entry.filename).exists() else "sha256 mismatch"
        raise ModelLoadError(
            "weights",
            f"weights '{entry.name}' unavailable: cache {dest / entry.filename} {state}, "
            f"no verified copy at {shared}, {err}; fix: sleeg weights download {entry.name} "
            "--from FILE (or set SLEEG_SHARED)",
        ) from err


def resolve(value: str | Path) -> Path:
    """The checkpoint file for a weights value: a known name's cached file, or the path itself."""
    entry = named(value)
    return fetch(entry) if entry else Path(value)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _verify_and_place(part: Path, final: Path, sha256: str) -> Path:
    got = sha256_of(part)
    if got != sha256:
        part.unlink()
        raise SleegError(
            f"sha256 mismatch for {final.name}: expected {sha256}, got {got} (download discarded)"
        )
    part.replace(final)
    return final


def download(
    entry: KnownWeights, dest: Path, *, url: str | None = None, progress: bool = True
) -> Path:
    """Download `entry` into `dest` (resuming a partial download), verify it, return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / entry.filename
    if final.is_file() and sha256_of(final) == entry.sha256:
        return final
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url or entry.url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = response.status == 206
            total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
            with (
                part.open("ab" if resumed else "wb") as out,
                tqdm(
                    total=total or None,
                    initial=have if resumed else 0,
                    unit="B",
                    unit_scale=True,
                    desc=entry.filename,
                    disable=not progress,
                ) as bar,
            ):
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as err:
        kept = f" (partial file kept for resuming: {part})" if part.is_file() else ""
        raise SleegError(
            f"download of {entry.name} from {url or entry.url} failed: {err}{kept}"
        ) from err
    return _verify_and_place(part, final, entry.sha256)


def register(entry: KnownWeights, source: Path, dest: Path) -> Path:
    """Copy a checkpoint already on disk into `dest` after checking its sha256."""
    if not source.is_file():
        raise SleegError(f"file not found: {source}")
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / entry.filename
    part = final.with_name(final.name + ".part")
    shutil.copyfile(source, part)
    return _verify_and_place(part, final, entry.sha256)
