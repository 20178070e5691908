"""Self-supervised training of the OoD head on unlabeled normal frames (the SLEEG recipe).

One step: random crops → pseudo-anomalies pasted on the device → frozen segmentor (no grad) →
head → refinement of the pasted labels (JEM during warm-up, then the SLEEG score) → L_a + β·L_o →
SGD with a poly schedule. Every random choice of step k is seeded by (seed, k) and checkpoints
hold the head, optimizer and patch bank, so a resumed run ends bit-for-bit where an uninterrupted
one would.

Launched by torchrun (`sleeg_core.train.distributed`), every process trains the same head on
its slice of each step's batch with gradients averaged (DistributedDataParallel); rank r > 0 adds
r to the seeds of its dropout and patches. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.profiler import record_function
from torch.utils.data import DataLoader
from tqdm import tqdm

from sleeg_core.common.config import to_dict
from sleeg_core.common.errors import SleegError
from sleeg_core.data.labels import ROAD_TRAIN_ID
from sleeg_core.model.head import HeadConfig, OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, resolve_device
from sleeg_core.model.tta import check_tta
from sleeg_core.segmentors import Segmentor, build_segmentor
from sleeg_core.segmentors.base import upsample_to_input
from sleeg_core.train.calibration import calibrate, calibration_rule
from sleeg_core.train.checkpoints import latest_checkpoint, read_checkpoint, write_checkpoint
from sleeg_core.train.config import OptimConfig, TrainConfig
from sleeg_core.train.data import CropDataset, StepSampler
from sleeg_core.train.distributed import Distributed, unwrap
from sleeg_core.train.losses import total_loss
from sleeg_core.train.metrics_log import MetricsLog, StepStats
from sleeg_core.train.patches import PatchRenderer
from sleeg_core.train.refinement import refine_labels, refinement_scores
from sleeg_core.train.sources import collect_frames

PendingStep = tuple[int, torch.Tensor, float, float]  # step, its figures, data and step seconds


def poly_lr(cfg: OptimConfig, step: int, total: int) -> float:
    """The learning rate of `step` of `total`: `cfg.lr` decayed by the poly schedule."""
    return cfg.lr * (1 - step / total) ** cfg.poly_power


class Trainer:
    """Owns the frozen segmentor, the head, the optimizer and the patch renderer of one run
    (of this process's share of it, given `dist`)."""

    def __init__(
        self,
        cfg: TrainConfig,
        segmentor: Segmentor | None = None,
        dist: Distributed | None = None,
    ):
        self.cfg = cfg
        try:  # before training, not after it
            check_tta(cfg.calibration.tta)
        except SleegError as err:
            raise SleegError(f"calibration.tta: {err}") from None
        self.out = Path(cfg.out)
        self.dist = dist
        self.rank, self.world_size = (dist.rank, dist.world_size) if dist else (0, 1)
        self.main = dist is None or dist.is_main  # writes the run folder
        # appended to the dropout and patch seeds: rank 0 draws what a single process would
        self.rank_key = (self.rank,) if self.rank else ()
        self.effective_batch = cfg.batch_size * self.world_size  # crops per optimizer step
        self.device = dist.device if dist else resolve_device(cfg.device)
        if segmentor is None:
            if not cfg.segmentor.weights:
                raise SleegError("segmentor.weights is required (a local checkpoint file)")
            segmentor = build_segmentor(
                cfg.segmentor.name, cfg.segmentor.weights, **cfg.segmentor.options
            )
        self.segmentor = segmentor.to(self.device)
        if cfg.segmentor.compile_mode:
            segmentor.compile_networks(cfg.segmentor.compile_mode)
        info = segmentor.info
        self.head_config = HeadConfig(
            info.feature_channels,
            cfg.head.width,
            cfg.head.depth,
            cfg.head.dropout,
            tuple(tuple(b) for b in cfg.head.branches),
        )
        torch.manual_seed(seeded(cfg.seed, 0))  # the head's initial weights
        self.head = OoDHead.from_config(self.head_config).to(self.device)
        self.optimizer = torch.optim.SGD(
            self.head.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
            # fused on a GPU: the AMP loss scaler then skips steps with inf/NaN gradients on the
            # device instead of reading a flag back every step (which would stall the queue)
            fused=True if self.device.type == "cuda" else None,
        )
        self.renderer = PatchRenderer(cfg.patches)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        # wall seconds per phase of train_step, summed over steps; None: not measured (the
        # measurement synchronises the device at every phase boundary)
        self.phase_seconds: defaultdict[str, float] | None = None

    def time_phases(self) -> defaultdict[str, float]:
        """Start summing wall time per phase of `train_step` (benchmarks); returns the sums."""
        self.phase_seconds = defaultdict(float)
        return self.phase_seconds

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """A named phase: a profiler label, and its wall time when `time_phases` is on."""
        with record_function(f"sleeg.{name}"):
            if self.phase_seconds is None:
                yield
                return
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            yield
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.phase_seconds[name] += time.perf_counter() - start

    # ------------------------------------------------------------------ one step
    def train_step(self, images: torch.Tensor) -> torch.Tensor:
        """One optimisation step. Returns its StepStats figures as one tensor on the device, read
        with `StepStats.of`; `fit` reads them a step late, so that on a GPU the next step is
        queued while this one runs (nothing in a step waits for the GPU)."""
        cfg, step = self.cfg, self.step
        torch.manual_seed(seeded(cfg.seed, step, 1, *self.rank_key))  # dropout of this step
        gen = torch.Generator()  # patch geometry drawn on the CPU: nothing waits for a GPU
        gen.manual_seed(seeded(cfg.seed, step, 2, *self.rank_key))
        images = images.to(self.device, non_blocking=True)
        road = None
        if cfg.patches.road_fraction > 0:
            with self._phase("road"):  # where the frozen segmentor sees road in the clean crops
                road = self.segmentor(images).train_ids() == ROAD_TRAIN_ID
        with self._phase("patches"):
            patched = self.renderer(images, gen, road)
        with self._phase("segmentor"):
            out = self.segmentor(patched.images)
        self.head.train()
        with self._phase("head_forward"):
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                h_small = self.head(out.features, per_branch=True)  # N×B×2×h×w, N branches
            branches = h_small.shape[0]
            h_each = upsample_to_input(  # (N·B)×2×H×W: each branch gets its own loss
                h_small.flatten(0, 1).float(),
                patched.images.shape[-2:],
                self.segmentor.info.feature_stride,
            )
        logits = None  # full-resolution logits only when refinement or TORE read them
        if cfg.refine.enabled or cfg.loss.beta > 0:
            logits = out.logits.float()
        with self._phase("refinement"):
            if cfg.refine.enabled:
                h = h_each.unflatten(0, (branches, -1)).mean(0)  # the head's output
                scores = refinement_scores(
                    h, logits, step, cfg.refine.warmup_iters, cfg.lam, cfg.refine.mode
                )
                labels = refine_labels(scores, patched.pasted, cfg.refine.n_candidates)
            else:
                labels = patched.pasted.long()
        with self._phase("losses"):  # mean over branches, × N below: each learns on its own

            def each(t: torch.Tensor) -> torch.Tensor:
                """`t` once per branch along the batch (a view, not a copy, for one branch)."""
                return t.expand(branches, *t.shape).flatten(0, 1)

            loss = total_loss(
                h_each,
                None if logits is None else each(logits),
                each(labels),
                cfg.loss.beta,
                cfg.loss.gamma,
                cfg.loss.dynamic_margin,
                cfg.loss.tae_weight,
            )
        for group in self.optimizer.param_groups:
            group["lr"] = poly_lr(cfg.optim, step, cfg.iterations)
        with self._phase("backward_and_update"):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss.total * branches).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step += 1
        n = labels.numel()
        return torch.stack(  # the StepStats fields in order; TORE is NaN when β = 0
            [
                loss.total.detach().float(),
                loss.tae.detach().float(),
                loss.tore.detach().float(),
                (labels == 1).sum() / n,
                (labels == 255).sum() / n,
            ]
        )

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of this step. Distributed: every rank calls it (their patch banks
        are gathered), rank 0 writes it and the others get None."""
        bank = self.renderer.bank.state_dict()
        banks = self.dist.all_gather(bank) if self.dist else None
        if not self.main:
            return None
        state = {
            "step": self.step,
            "config": to_dict(self.cfg),
            "head": unwrap(self.head).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "bank": bank,
        }
        if banks is not None:
            state["rank_banks"] = banks  # one per rank: rank r resumes with its own
        return write_checkpoint(self.out, self.step, state, self.cfg.keep_checkpoints)

    def load_checkpoint(self, path: Path) -> None:
        state = read_checkpoint(path, self.device)
        self.head.load_state_dict(state["head"])  # before fit wraps it
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        banks = state.get("rank_banks", [state["bank"]])
        if len(banks) != self.world_size and self.main:
            tqdm.write(
                f"{path} was written by {len(banks)} process(es), this run has "
                f"{self.world_size}: the batches from here on differ from the original run's"
            )
        self.renderer.bank.load_state_dict(banks[self.rank % len(banks)], self.device)
        self.step = int(state["step"])

    # ------------------------------------------------------------------ the run
    def fit(self, resume: bool = False, progress: bool = True) -> HeadFile | None:
        """Train to `iterations` and write head.pt; returns the head file (None on ranks > 0)."""
        progress = progress and self.main
        collect = partial(collect_frames, self.cfg.data.sources, self.out / "frames", progress)
        frames, skipped = self.dist.in_turn(collect) if self.dist else collect()
        if resume:
            self._resume()
        if self.dist:
            self._start_distributed(frames)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            config = yaml.safe_dump(to_dict(self.cfg), sort_keys=False)
            (self.out / "config.yaml").write_text(config)
        loader = self.loader(frames, self.cfg.iterations)
        log = MetricsLog(self.out, self.step) if self.main else None
        self._run_steps(loader, log, progress)
        self.head = unwrap(self.head)
        if log is None:
            return None  # ranks > 0
        log.close()
        head_file = self.export(frames, skipped)
        head_file.save(self.out / "head.pt")
        return head_file

    def _resume(self) -> None:
        """Continue from the run folder's latest checkpoint, when it has one."""
        latest = latest_checkpoint(self.out)
        if latest is None:
            return
        self.load_checkpoint(latest)
        if self.main:
            tqdm.write(f"resumed from {latest} at step {self.step}")

    def _start_distributed(self, frames: list[Path]) -> None:
        """Check that every rank has the same frames and step, and wrap the head for DDP."""
        dist, cfg = self.dist, self.cfg
        dist.check_same("the frames or the step resumed from", [*map(str, frames)], self.step)
        self.head = dist.wrap(self.head)
        if self.main:
            tqdm.write(
                f"distributed: world size {self.world_size} ({dist.backend}), batch "
                f"{cfg.batch_size} per process, effective batch {self.effective_batch}"
            )

    def _run_steps(self, loader: DataLoader, log: MetricsLog | None, progress: bool) -> None:
        """Train on every batch of `loader`, logging each step's figures and checkpointing.

        A step's figures are read a step late, so that on a GPU the next step is queued while
        it runs; a checkpoint's step is read (and logged) before the checkpoint is written."""
        cfg = self.cfg
        bar = tqdm(total=cfg.iterations, initial=self.step, desc="train", disable=not progress)
        pending: list[PendingStep] = []  # queued steps, not yet read
        t_data = time.perf_counter()
        for images in loader:
            t_step = time.perf_counter()
            values = self.train_step(images)
            t_end = time.perf_counter()
            if self.dist:  # the figures of the whole batch
                values = self.dist.mean(values)
            if pending:  # the step before: on a GPU it ran while this one was queued
                self._record(pending.pop(), log, bar)
            pending.append((self.step, values, t_step - t_data, t_end - t_step))
            bar.update(1)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.iterations:
                self._record(pending.pop(), log, bar)  # in metrics.csv before its checkpoint
                self.save_checkpoint()
            t_data = time.perf_counter()
        if pending:
            self._record(pending.pop(), log, bar)
        bar.close()

    def _record(self, pending: PendingStep, log: MetricsLog | None, bar: tqdm) -> None:
        """Read and log a queued step's figures (waits for that step)."""
        cfg = self.cfg
        step, values, data_s, step_s = pending
        stats = StepStats.of(values)
        if log is not None:
            log.add(step, poly_lr(cfg.optim, step - 1, cfg.iterations), stats, data_s, step_s)
        if step % cfg.log_every == 0 or step == cfg.iterations:
            bar.set_postfix(
                loss=f"{stats.loss:.3f}",
                tae=f"{stats.tae:.3f}",
                tore=f"{stats.tore:.2f}",
                anom=f"{stats.anomaly_fraction:.3f}",
            )

    def loader(self, frames: list[Path], until: int) -> DataLoader:
        """Batches of random crops for steps self.step … until−1, in worker processes."""
        cfg = self.cfg
        return DataLoader(
            CropDataset(frames, cfg.data.augment, cfg.seed, cfg.data.cache_mb),
            batch_sampler=StepSampler(
                len(frames),
                cfg.batch_size,
                cfg.seed,
                self.step,
                until,
                self.rank,
                self.world_size,
            ),
            num_workers=cfg.data.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def export(self, frames: list[Path], skipped: int) -> HeadFile:
        """Head file with the threshold calibrated on un-augmented training frames."""
        self.head.eval()
        model = AnomalySegmenter(self.segmentor, self.head, lam=self.cfg.lam)
        threshold, stats = calibrate(model, frames, self.cfg.calibration)
        return HeadFile(
            head_config=self.head_config,
            state_dict={k: v.detach().cpu() for k, v in self.head.state_dict().items()},
            segmentor=self.segmentor.info.name,
            segmentor_options=dict(self.cfg.segmentor.options),
            feature_channels=self.segmentor.info.feature_channels,
            lam=self.cfg.lam,
            threshold=threshold,
            threshold_rule=calibration_rule(self.cfg.calibration),
            score_stats=stats,
            train_config={
                **to_dict(self.cfg),
                "frames": len(frames),
                "frames_skipped": skipped,
                "world_size": self.world_size,
                "effective_batch": self.effective_batch,
            },
        )


def seeded(seed: int, *key: int) -> int:
    """A 63-bit seed derived from (seed, *key), stable across processes (unlike hash())."""
    return int(np.random.default_rng([seed, *key]).integers(0, 2**63 - 1))
