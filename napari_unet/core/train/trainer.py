"""Training: ``Trainer.fit()`` is a plain generator of frozen :class:`Progress` records.

It knows nothing of Qt and prints nothing. The GUI drains it in a napari
``thread_worker``, the command line with a progress bar. ``Trainer.stop()`` (from any
thread) ends the run at the next iteration; ``pause()`` / ``resume()`` hold it between
iterations; ``Trainer.bundle()`` returns the weights, optimizer state and history, so a
later ``Trainer`` continues where this one stopped.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from napari_unet.core.config import TrainConfig
from napari_unet.core.decision import decide
from napari_unet.core.errors import TrainingError
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.device import (
    autocast,
    cpu_threads,
    keep_freed_memory,
    prefers_channels_last,
    select_device,
)
from napari_unet.core.scale import training_size
from napari_unet.core.train.augment import Augmenter, cut_size
from napari_unet.core.train.batches import batch_source
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.losses import anchor_loss, edge_loss, masked_loss
from napari_unet.core.train.sampling import PatchSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One training iteration's report."""

    iteration: int  # iterations of this model in all runs
    run_iteration: int  # iterations in this run
    total: int | None  # this run's iteration budget, if any
    loss: float
    learning_rate: float
    elapsed: float
    eta: float | None
    fraction: float  # of this run's budget, 0..1
    validation_iou: float | None = None  # foreground IoU on held-out annotations, when due


class Trainer:
    """Trains one model bundle on one :class:`TrainingData`."""

    def __init__(self, bundle: ModelBundle, data: TrainingData, config: TrainConfig | None = None):
        self.config = config or TrainConfig()
        self.data = data
        if data.n_classes > bundle.n_classes:
            bundle = bundle.with_classes(data.n_classes)
        self._bundle = bundle
        self.device = select_device(self.config.device)
        keep_freed_memory()
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(self.config.leave_core_free))
        self.model = bundle.build_model().to(self.device)
        if self.config.checkpointing:
            self.model.use_checkpointing(True)
        # channels_last is a layout of 4D tensors: 2D models only.
        self.channels_last = prefers_channels_last(self.device) and bundle.config.dims == 2
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._anchor = None  # a frozen copy of the starting model, for anchor_weight
        if self.config.anchor_weight > 0 and (bundle.iterations > 0 or bundle.history):
            self._anchor = copy.deepcopy(self.model).eval().requires_grad_(False)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        def new_optimizer() -> torch.optim.Optimizer:
            return torch.optim.AdamW(
                self.model.parameters(), lr=self.config.learning_rate,
                weight_decay=self.config.weight_decay,
                fused=self.device.type in ("cpu", "cuda"),
            )

        self.optimizer = new_optimizer()
        if bundle.optimizer_state:
            try:
                self.optimizer.load_state_dict(bundle.optimizer_state)
                _check_optimizer_state(self.optimizer)
            except (ValueError, KeyError, RuntimeError, TypeError, AttributeError, IndexError):
                log.info("optimizer state does not fit this model; starting it afresh")
                self.optimizer = new_optimizer()
        balance = self.config.class_balance
        if balance is None:
            balance = 1.0 if data.annotated_fraction < 0.5 else 0.0
        self.sampler = self._make_sampler(data, bundle, balance)
        self.augmenter = self._make_augmenter(bundle)
        # How large its objects look (:mod:`~napari_unet.core.scale`), so prediction can shrink images
        # whose objects are far larger.
        self.object_size = self._object_size(data, bundle)
        self.voxel_size = bundle.voxel_size
        self.iteration = bundle.iterations
        self.run_iteration = 0
        self.last_loss = float("nan")
        self.last_validation: float | None = None
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._started = 0.0
        self._history_entry: dict | None = None  # this run's record, set when fit() ends

    # ------------------------------------------------- what a 3D trainer replaces
    def _make_sampler(self, data: TrainingData, bundle: ModelBundle, balance: float):
        # Patches are cut larger than the model sees them when the augmentation zooms out.
        return PatchSampler(data.train, bundle.n_classes,
                            cut_size(self.config.patch_size, self.config.augment),
                            seed=self.config.seed + bundle.iterations, balance=balance)

    def _make_augmenter(self, bundle: ModelBundle):
        return Augmenter(self.config.augment, seed=self.config.seed + bundle.iterations,
                         device=self.device)

    def _object_size(self, data: TrainingData, bundle: ModelBundle) -> float | None:
        return training_size([p.image for p in data.train]) or bundle.object_size

    def _batch_source(self):
        return batch_source(self.sampler, self.config.batch_size, self.device)

    # ---------------------------------------------------------------- control
    def stop(self) -> None:
        """End the run after the current iteration (safe from any thread)."""
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ---------------------------------------------------------------- training
    def _learning_rate(self, fraction: float) -> float:
        cfg = self.config
        warm = min(1.0, (self.run_iteration + 1) / max(cfg.warmup, 1))
        cosine = 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
        return cfg.learning_rate * warm * (0.05 + 0.95 * cosine)

    def _fraction(self, elapsed: float) -> float:
        cfg = self.config
        parts = []
        total = cfg.budget_iterations
        if total:
            parts.append(self.run_iteration / total)
        if cfg.seconds:
            parts.append(elapsed / cfg.seconds)
        return min(1.0, max(parts)) if parts else 0.0

    def _autocast(self):
        return autocast(self.device, self.config.mixed_precision)

    def _step(self, x, y, w, lr: float) -> torch.Tensor | None:
        """One update; ``None`` when :meth:`stop` came before the backward pass (most of a
        step's time), which is then skipped: the weights stay as the last step left them."""
        dev = self.device
        nb = dev.type == "cuda"
        xt = torch.as_tensor(x).to(dev, non_blocking=nb)
        yt = torch.as_tensor(y).to(dev, non_blocking=nb)
        wt = None if w is None else torch.as_tensor(w).to(dev, non_blocking=nb)
        xt, yt, wt = self.augmenter(xt, yt, wt, self.config.patch_size)
        if self.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with self._autocast():
            logits = self.model(xt)
        loss = masked_loss(logits, yt, wt, self.config.dice_weight)
        free = yt < 0
        if self._anchor is not None:
            with torch.no_grad(), self._autocast():
                reference = self._anchor(xt)
            loss = loss + self.config.anchor_weight * anchor_loss(logits, reference, free)
        if self.config.edge_weight > 0:
            loss = loss + self.config.edge_weight * edge_loss(
                logits, xt, self.config.edge_sigma, free=free)
        if self._stop.is_set():
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def fit(self) -> Iterator[Progress]:
        """Train, yielding a :class:`Progress` after every iteration.

        The run ends when the budget is spent, when :meth:`stop` is called, or when the
        generator is closed; the weights are kept in every case (:meth:`bundle`). A time
        budget counts the seconds spent training: time paused, or spent by the consumer
        between iterations, is not counted.
        """
        cfg = self.config
        total = cfg.budget_iterations
        prefetch = self._batch_source()
        self._started = time.perf_counter()
        paused_for = 0.0
        pending: torch.Tensor | None = None
        try:
            while not self._stop.is_set():
                if not self._running.is_set():
                    t0 = time.perf_counter()
                    while not self._running.wait(0.05):
                        pass
                    paused_for += time.perf_counter() - t0
                    if self._stop.is_set():
                        break
                elapsed = time.perf_counter() - self._started - paused_for
                fraction = self._fraction(elapsed)
                if fraction >= 1.0:
                    break
                lr = self._learning_rate(fraction)
                x, y, w = prefetch.get()
                try:
                    loss_t = self._step(x, y, w, lr)
                    if loss_t is None:
                        break
                    # Reading a loss waits for the device: on a GPU read the previous
                    # step's, so the next step is queued while this one runs.
                    if self.device.type == "cuda" and pending is not None:
                        loss = float(pending)
                    else:
                        loss = float(loss_t)
                    pending = loss_t
                except torch.OutOfMemoryError:
                    raise TrainingError(
                        f"out of memory on {self.device.type} with batch {cfg.batch_size} and "
                        f"patch {cfg.patch_size}: lower the batch or patch size"
                    ) from None
                if not math.isfinite(loss):
                    raise TrainingError(
                        "training diverged (the loss is not finite): lower the learning rate"
                    )
                self.iteration += 1
                self.run_iteration += 1
                self.last_loss = loss
                elapsed = time.perf_counter() - self._started - paused_for
                fraction = self._fraction(elapsed)
                validation = None
                last = fraction >= 1.0
                if self.data.validation and (
                    self.run_iteration % cfg.validate_every == 0 or last
                ):
                    validation = self.validate()
                    self.last_validation = validation
                eta = None
                if fraction > 0:
                    eta = max(0.0, elapsed / fraction - elapsed)
                suspended = time.perf_counter()
                yield Progress(
                    iteration=self.iteration, run_iteration=self.run_iteration, total=total,
                    loss=loss, learning_rate=lr, elapsed=elapsed, eta=eta, fraction=fraction,
                    validation_iou=validation,
                )
                # Time spent by the consumer between iterations is not training time.
                paused_for += time.perf_counter() - suspended
        finally:
            prefetch.close()
            self._record(time.perf_counter() - self._started - paused_for)

    def _record(self, seconds: float) -> None:
        self._history_entry = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "iterations": self.run_iteration,
            "seconds": round(seconds, 2),
            "final_loss": None if math.isnan(self.last_loss) else round(self.last_loss, 5),
            "validation_iou": self.last_validation,
            "device": self.device.type,
            "batch_size": self.config.batch_size,
            "patch_size": self.config.patch_size,
            "zoom": self.config.augment.zoom,
            "annotated_pixels": [int(c) for c in self.data.counts],
            "pixel_weights": bool(self.sampler.has_weights),
            "edge_weight": self.config.edge_weight,
            "anchor_weight": self.config.anchor_weight if self._anchor is not None else 0.0,
        }

    @torch.no_grad()
    def validate(self, max_slices: int = 8, max_side: int = 512) -> float | None:
        """Foreground IoU on the held-out annotated pixels (None when nothing is held out),
        foreground decided as in prediction (:func:`~napari_unet.core.decision.decide`)."""
        inter = union = 0
        self.model.eval()
        try:
            for pair in self.data.validation[:max_slices]:
                img = pair.image[0, ..., :max_side, :max_side]
                tgt = pair.target[0, :max_side, :max_side]
                x = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)
                x = x[None, None] if x.ndim == 2 else x[None]
                with self._autocast():
                    logits = self.model(x)
                probs = torch.softmax(logits[0].float(), dim=0).cpu().numpy()
                pred = decide(probs)
                valid = tgt >= 0
                p, t = pred[valid] > 0, tgt[valid] > 0
                inter += int(np.count_nonzero(p & t))
                union += int(np.count_nonzero(p | t))
        finally:
            self.model.train()
        return None if union == 0 else inter / union

    def bundle(self) -> ModelBundle:
        """A snapshot of the model (CPU tensors), its optimizer state and history."""
        b = self._bundle
        history = list(b.history)
        entry = self._history_entry
        if entry is not None and self.run_iteration:
            history.append(entry)
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        opt = _to_cpu(self.optimizer.state_dict())
        return ModelBundle(
            config=b.config, state_dict=state, label_kind=b.label_kind,
            class_names=list(b.class_names), class_colors=list(b.class_colors),
            normalisation=b.normalisation, history=history, iterations=self.iteration,
            optimizer_state=opt, channels=b.channels, object_size=self.object_size,
            voxel_size=self.voxel_size,
        )


def _check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Raise ValueError when a loaded optimizer state does not fit the parameters (a
    model file whose state belongs to another model would fail at the first step)."""
    for group in optimizer.param_groups:
        missing = set(optimizer.defaults) - set(group)
        if missing:
            raise ValueError(f"optimizer settings {sorted(missing)}")
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if key == "step":
                    if not isinstance(value, torch.Tensor | int | float):
                        raise ValueError("optimizer step")
                    continue
                if not isinstance(value, torch.Tensor) or value.shape != p.shape:
                    raise ValueError(f"optimizer state {key}")


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
