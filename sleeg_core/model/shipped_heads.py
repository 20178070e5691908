"""Shipped heads by name, and which segmentor a weights value and a head file call for.

Wherever a head file is taken (`--head`, the node's `head`), `resolve_head` accepts a path or the
name of a shipped head. A value that names an existing file is that file; a bare name (no folder,
no suffix, e.g. `enet_cityscapes_sleeg`) is `<name>.pt`, else the ensemble file `<name>.yaml`
(sleeg_core.model.ensemble_file), in the first of these folders that has either: each of
`$SLEEG_MODELS` (os.pathsep-separated), then `models/` of the source checkout. Sourcing an
installed ROS package prepends its shipped heads' folder to `$SLEEG_MODELS` (an environment hook of
the package), so this module needs no knowledge of install layouts. Any other value is a path,
used as given.
"""

from __future__ import annotations

import os
from pathlib import Path

from sleeg_core.common.errors import ModelLoadError
from sleeg_core.model import weights
from sleeg_core.model.ensemble_file import ENSEMBLE_SUFFIXES
from sleeg_core.model.headfile import HeadFile
from sleeg_core.segmentors import segmentor_names

HEAD_SUFFIX = ".pt"
SUFFIXES = (HEAD_SUFFIX, ENSEMBLE_SUFFIXES[0])  # a head file, an ensemble file


def model_dirs() -> list[Path]:
    """The folders searched for shipped heads, in order (see the module docstring)."""
    env = [Path(p) for p in os.environ.get("SLEEG_MODELS", "").split(os.pathsep) if p]
    return [*env, weights.REPO / "models"]


def shipped_heads() -> list[str]:
    """Names of the shipped heads and ensembles found in `model_dirs()`, sorted."""
    found = {
        p.stem
        for d in model_dirs()
        if d.is_dir()
        for suffix in SUFFIXES
        for p in d.glob(f"*{suffix}")
    }
    return sorted(found)


def resolve_head(value: str | Path) -> Path:
    """The head (or ensemble) file for a head value: a shipped one's file, or the path itself."""
    text = str(value)
    if Path(text).exists() or Path(text).name != text or Path(text).suffix:
        return Path(text)
    dirs = model_dirs()
    for folder in dirs:
        for suffix in SUFFIXES:
            if (path := folder / f"{text}{suffix}").is_file():
                return path
    files = " or ".join(f"{text}{suffix}" for suffix in SUFFIXES)
    raise ModelLoadError(
        "head",
        f"no shipped head '{text}': no {files} in {', '.join(map(str, dirs))} "
        f"(shipped: {', '.join(shipped_heads()) or 'none'}); give a head file path, or train "
        "one with `sleeg train`",
    )


def pick_segmentor(given: str | None, weights_value: str | Path, head: HeadFile | None) -> str:
    """The segmentor to build: `given`, else the head file's, else the known weights'; every one
    of them that is set must name the same segmentor, a registered one (else a ModelLoadError,
    field "segmentor")."""
    sources: dict[str, str] = {}
    if given:
        sources["segmentor"] = given
    if head is not None:
        sources["head"] = head.segmentor
    if entry := weights.named(weights_value):
        sources[f"weights '{entry.name}'"] = entry.segmentor
    if not sources:
        raise ModelLoadError(
            "segmentor",
            "no segmentor: name one (e.g. enet), or give a head file or a known weights name "
            "(sleeg weights list) that records it",
        )
    if len(set(sources.values())) > 1:
        said = ", ".join(f"{where} → '{name}'" for where, name in sources.items())
        raise ModelLoadError("segmentor", f"segmentors disagree: {said}")
    name = next(iter(sources.values()))
    if name not in segmentor_names():
        raise ModelLoadError(
            "segmentor",
            f"unknown segmentor '{name}'; choose one of: {', '.join(segmentor_names())}",
        )
    return name
