"""The node's model, from its parameters: PyTorch through sleeg_core, or an ONNX graph.

`load_model` is what configure runs: the model (`load_segmenter`, whose typed errors name the
input at fault, reported here as the node parameter that sets it), its device, the inference
size and how many inference threads use how many CPU threads each. Every configuration problem is
a StartupError naming the parameter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from rclpy.impl.rcutils_logger import RcutilsLogger

from sleeg_core.common.errors import ModelLoadError, SleegError
from sleeg_core.deploy.onnx_backend import OnnxSegmenter
from sleeg_core.model.ensemble import EnsembleSegmenter
from sleeg_core.model.ensemble_file import EnsembleFile
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, load_segmenter
from sleeg_ros.parameters import StartupError

Param = Callable[[str], Any]  # a parameter's value by name
# ModelLoadError.field → the node parameter that sets it
FIELD_PARAMS = {
    "weights": "weights",
    "head": "head",
    "segmentor": "segmentor",
    "device": "device",
    "compile_mode": "compile_mode",
}


@dataclass
class LoadedModel:
    """What configure loaded and decided."""

    model: AnomalySegmenter | EnsembleSegmenter | OnnxSegmenter
    name: str  # for the log: the segmentor, or the ONNX graph's
    device: torch.device
    size: tuple[int, int] | None  # inference (H, W); None: each frame's own
    n_inference: int  # inference threads
    head_threshold: float = math.nan  # calibrated with the head (head file or ONNX graph)
    score_stats: dict[str, float] | None = None


def load_model(param: Param, log: RcutilsLogger, n_cameras: int, cpu_cores: int) -> LoadedModel:
    """The model the parameters ask for (onnx_model: on ONNX Runtime; else PyTorch)."""
    w, h = param("inference_width"), param("inference_height")
    size = (h, w) if w > 0 and h > 0 else None
    if param("onnx_model"):
        return _load_onnx(param, log, size, n_cameras, cpu_cores)
    model, head_file = _load_segmenter(param)
    try:
        model.tta = param("tta")
    except SleegError as err:
        raise StartupError(f"parameter 'tta': {err}") from err
    device = next(model.parameters()).device
    if param("half_precision") and device.type == "cuda":  # ignored on CPU
        model.convert_networks(torch.float16)
    n_inference, threads = inference_threads(param, device.type == "cuda", n_cameras, cpu_cores)
    torch.set_num_threads(threads)
    loaded = LoadedModel(model, model_name(model), device, size, n_inference)
    if head_file is not None:
        loaded.head_threshold, loaded.score_stats = head_file.threshold, head_file.score_stats
    return loaded


def model_name(model: AnomalySegmenter | EnsembleSegmenter) -> str:
    """The segmentor's name, or an ensemble's segmentors' names, for the log."""
    if isinstance(model, EnsembleSegmenter):
        names = " + ".join(m.segmentor.info.name for m in model.members)
        return f"ensemble ({names})"
    return model.segmentor.info.name


def _load_segmenter(
    param: Param,
) -> tuple[AnomalySegmenter | EnsembleSegmenter, HeadFile | EnsembleFile | None]:
    """`load_segmenter` on the parameters; its errors name the parameter at fault."""
    head, weights, score = param("head"), param("weights"), param("score")
    if not head and score.startswith("sleeg"):
        raise StartupError(f"parameter 'score' is '{score}', which needs parameter 'head'")
    try:
        model, head_file = load_segmenter(
            param("segmentor") or None, weights, head or None, param("device")
        )
    except ModelLoadError as err:
        raise StartupError(f"parameter '{FIELD_PARAMS[err.field]}': {err}") from err
    if score not in model.available_scores():
        raise StartupError(
            f"parameter 'score': '{score}' is not one of {', '.join(model.available_scores())}"
        )
    return model, head_file


def inference_threads(param: Param, cuda: bool, n_cameras: int, cpu_cores: int) -> tuple[int, int]:
    """(inference threads, CPU threads each computes with). Auto (inference_threads 0): one
    on CUDA or with compile_mode; on the CPU one per camera up to the cores (or cpu_threads),
    each with its share of them — as many single-threaded processes would run, without a
    copy of the model each."""
    cores = param("cpu_threads") or cpu_cores
    n = param("inference_threads")
    if n == 0:
        n = 1 if cuda or param("compile_mode") else min(n_cameras, cores)
    return n, max(1, cores // n)


def _load_onnx(
    param: Param, log: RcutilsLogger, size: tuple[int, int] | None, n_cameras: int, cores: int
) -> LoadedModel:
    """An exported graph on ONNX Runtime (CPU): the PyTorch-only parameters must be off, and
    the graph fixes the score, the inference size and the test-time averaging (none)."""
    path = param("onnx_model")
    used = {
        "device": param("device") not in ("auto", "cpu"),
        "compile_mode": bool(param("compile_mode")),
    }
    if any(used.values()):
        names = ", ".join(n for n, on in used.items() if on)
        raise StartupError(
            f"parameter 'onnx_model': ONNX Runtime runs the graph on the CPU as exported; "
            f"unset {names} (or unset onnx_model for PyTorch)"
        )
    n_inference, threads = inference_threads(param, False, n_cameras, cores)
    try:
        model = OnnxSegmenter(path, threads)
    except SleegError as err:
        raise StartupError(f"parameter 'onnx_model': {err}") from err
    if param("score") not in model.available_scores():
        raise StartupError(
            f"parameter 'score': '{param('score')}' is not the score of the ONNX graph "
            f"{path} ('{model.score_name}')"
        )
    if size not in (None, model.size):
        log.warning(
            f"inference size {size[1]}x{size[0]} ignored: the ONNX graph runs at "
            f"{model.size[1]}x{model.size[0]}"
        )
    if param("tta") != "none":
        log.warning(
            f"tta '{param('tta')}' ignored: the ONNX graph runs once per frame, as "
            "exported (set tta: none to silence this)"
        )
    name = f"{model.segmentor_name} graph (ONNX Runtime)"
    cpu = torch.device("cpu")
    return LoadedModel(
        model, name, cpu, model.size, n_inference, model.threshold, model.score_stats
    )


def compile_model(loaded: LoadedModel, mode: str, score: str, log: RcutilsLogger) -> None:
    """torch.compile the model (compile_mode; '' is off) and compile it now (`warm_up`)."""
    if not mode:
        return
    try:
        loaded.model.compile_networks(mode)
    except ModelLoadError as err:
        raise StartupError(f"parameter '{FIELD_PARAMS[err.field]}': {err}") from err
    warm_up(loaded, mode, score, log)


def warm_up(loaded: LoadedModel, mode: str, score: str, log: RcutilsLogger) -> None:
    """For a fixed inference size, compile now (a frame of zeros) so that the first camera
    frame is not held up and failures stop the transition; else on each size's first frame."""
    if loaded.size is None:
        log.info(f"compile_mode '{mode}': compiling on the first frame of each size")
        return
    start = time.perf_counter()
    zeros = torch.zeros(1, 3, *loaded.size, dtype=torch.uint8, device=loaded.device)
    try:
        loaded.model(zeros, scores=(score,))
    except Exception as err:
        raise StartupError(
            f"parameter 'compile_mode': compiling '{mode}' failed: "
            f"{err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    seconds = time.perf_counter() - start
    log.info(f"compiled '{mode}' for {loaded.size[1]}×{loaded.size[0]} in {seconds:.1f} s")
