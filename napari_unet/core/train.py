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
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig, Augmenter
from .checkpoint import ModelBundle
from .data import PatchSampler, TrainingData
from .device import (
    autocast,
    cpu_threads,
    keep_freed_memory,
    prefers_channels_last,
    select_device,
)
from .errors import InputError, TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train. ``iterations`` and ``seconds`` both bound the run."""

    iterations: int | None = None
    seconds: float | None = None
    batch_size: int = 8
    patch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 20
    dice_weight: float = 0.0  # soft Dice added to the loss; it fattens objects on dense labels
    class_balance: float | None = None  # None: 1 for sparse strokes, less for dense labels
    edge_weight: float = 0.0  # pairwise loss putting label edges on image edges (see edge_loss)
    edge_sigma: float = 0.1  # intensity difference (normalised units) that counts as an edge
    # Keeps unannotated pixels near the prediction of the model this run starts from (a
    # KL term; for trained or pre-trained models only): long runs on a few strokes then
    # do not drift from what the starting model knew.
    anchor_weight: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validate_every: int = 50
    seed: int = 0
    device: str = "auto"
    leave_core_free: bool = True
    checkpointing: bool = False
    mixed_precision: bool = True  # bf16 autocast where the device runs it fast

    def __post_init__(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise InputError("the number of iterations must be at least 1")
        if self.seconds is not None and self.seconds <= 0:
            raise InputError("the time budget must be more than 0 seconds")
        if self.batch_size < 1:
            raise InputError("the batch size must be at least 1")
        if self.patch_size < 16 or self.patch_size % 16:
            raise InputError("the patch size must be a multiple of 16, at least 16")
        if not self.learning_rate > 0:
            raise InputError("the learning rate must be positive")
        if not self.edge_weight >= 0:
            raise InputError("the edge loss weight must be 0 or more")
        if not self.anchor_weight >= 0:
            raise InputError("the anchor weight must be 0 or more")
        if not self.edge_sigma > 0:
            raise InputError("the edge loss's intensity scale must be positive")

    @property
    def budget_iterations(self) -> int | None:
        if self.iterations is None and self.seconds is None:
            return 500
        return self.iterations


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


def masked_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None, dice_weight: float
) -> torch.Tensor:
    """Cross-entropy ignoring unannotated pixels (-1), plus optional soft Dice.

    Nothing here reads a value back from the device, so a GPU is never made to wait:
    a batch without annotated pixels gives a loss of 0 by the clamped denominator.
    """
    valid = target >= 0
    ce = F.cross_entropy(logits.float(), target.clamp(min=0), reduction="none")
    w = valid.float() if weights is None else valid.float() * weights
    loss = (ce * w).sum() / w.sum().clamp(min=1e-6)
    if dice_weight > 0:
        probs = torch.softmax(logits.float(), dim=1)
        onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2).float()
        m = valid.unsqueeze(1).float()
        inter = (probs * onehot * m).sum(dim=(0, 2, 3))
        denom = ((probs + onehot) * m).sum(dim=(0, 2, 3))
        present = onehot.mul(m).sum(dim=(0, 2, 3)) > 0
        dice = (2 * inter + 1.0) / (denom + 1.0)
        n_present = present.sum().clamp(min=1)
        loss = loss + dice_weight * ((1 - dice) * present).sum() / n_present
    return loss


def edge_loss(logits: torch.Tensor, image: torch.Tensor, sigma: float = 0.1,
              radius: int = 3, free: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise (CRF-like) loss: neighbours of similar intensity should share a label.

    For every pixel pair within ``radius``, the probability that their labels differ is
    weighed by a Gaussian of their intensity difference (``sigma``, normalised units) and
    of their distance, so changing label costs little only across an image edge (the
    regularised losses of Tang et al., ECCV 2018, and the gated CRF loss of Obukhov et
    al., 2019, for scribble supervision). With strokes, this moves the object outlines
    from the middle of the unpainted band onto the intensity edge. With ``free`` (B, H, W,
    True where nothing is annotated) only pairs with an unannotated pixel count: where
    both are annotated the annotation decides, so densely corrected slices are learnt as
    painted.
    """
    probs = torch.softmax(logits.float(), dim=1)
    img = image.float()
    if img.shape[1] > 1:
        img = img.mean(dim=1, keepdim=True)
    _, _, h, w = probs.shape
    open_ = None if free is None else free.float().unsqueeze(1)
    total = probs.new_zeros(())
    inv_i = -0.5 / sigma**2
    inv_d = -0.5 / max(radius / 2, 1) ** 2
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > radius * radius:
                continue
            xa = slice(max(-dx, 0), w - max(dx, 0))
            xb = slice(max(dx, 0), w + min(dx, 0))
            pa, pb = probs[:, :, : h - dy, xa], probs[:, :, dy:, xb]
            ia, ib = img[:, :, : h - dy, xa], img[:, :, dy:, xb]
            k = torch.exp((ia - ib).square() * inv_i) * math.exp((dy * dy + dx * dx) * inv_d)
            differ = 1 - (pa * pb).sum(dim=1, keepdim=True)
            if open_ is not None:  # 1 unless both pixels of the pair are annotated
                fa, fb = open_[:, :, : h - dy, xa], open_[:, :, dy:, xb]
                k = k * (fa + fb - fa * fb)
            total = total + (k * differ).sum()
    return total / probs[:, :1].numel()


class _Prefetcher:
    """Draws the next batches on a background thread while the model trains."""

    def __init__(self, sampler: PatchSampler, batch_size: int, depth: int = 2,
                 pin: bool = False):
        self._pin = pin
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sampler, batch_size), daemon=True, name="napari-unet-sampler"
        )
        self._thread.start()

    def _run(self, sampler: PatchSampler, batch_size: int) -> None:
        try:
            while not self._stop.is_set():
                item = sampler.sample(batch_size)
                if self._pin:  # page-locked for asynchronous copies to the GPU
                    item = tuple(None if a is None else torch.from_numpy(a).pin_memory()
                                 for a in item)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # handed to the training thread
            self._queue.put(exc)

    def get(self):
        item = self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class _DeviceBatches:
    """Cuts patches from training data kept on the GPU: no sampling thread competes with
    the training thread for the interpreter, and no patch crosses the bus."""

    #: Training data up to this size (and a tenth of the GPU's memory) stays on the GPU.
    MAX_BYTES = 2 * 1024**3

    def __init__(self, sampler: PatchSampler, batch_size: int, device: torch.device):
        self.sampler = sampler
        self.batch_size = batch_size
        self.device = device
        self.pairs = [
            (torch.from_numpy(p.image).to(device), torch.from_numpy(p.target).to(device),
             None if p.weight is None else torch.from_numpy(p.weight).to(device))
            for p in sampler.pairs
        ]

    @classmethod
    def fits(cls, sampler: PatchSampler, device: torch.device) -> bool:
        if device.type != "cuda":
            return False
        size = sum(p.image.nbytes + p.target.nbytes + (0 if p.weight is None else p.weight.nbytes)
                   for p in sampler.pairs)
        total = torch.cuda.get_device_properties(device).total_memory
        return size <= min(cls.MAX_BYTES, total // 10)

    def get(self):
        p = self.sampler.patch_size
        xs, ys, ws = [], [], []
        for i, z, y0, x0 in self.sampler.draw(self.batch_size):
            image, target, weight = self.pairs[i]
            xs.append(image[z, y0 : y0 + p, x0 : x0 + p])
            ys.append(target[z, y0 : y0 + p, x0 : x0 + p])
            if self.sampler.has_weights:
                ws.append(weight[z, y0 : y0 + p, x0 : x0 + p] if weight is not None
                          else torch.ones((p, p), device=self.device))
        w = torch.stack(ws) if ws else None
        return torch.stack(xs).unsqueeze(1), torch.stack(ys).long(), w

    def close(self) -> None:
        self.pairs = []


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
        self.channels_last = prefers_channels_last(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._anchor = None  # a frozen copy of the starting model, for anchor_weight
        if self.config.anchor_weight > 0 and (bundle.iterations > 0 or bundle.history):
            self._anchor = copy.deepcopy(self.model).eval().requires_grad_(False)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        if bundle.optimizer_state:
            try:
                self.optimizer.load_state_dict(bundle.optimizer_state)
            except (ValueError, KeyError, RuntimeError):
                log.info("optimizer state does not fit this model; starting it afresh")
        balance = self.config.class_balance
        if balance is None:
            balance = 1.0 if data.annotated_fraction < 0.5 else 0.0
        self.sampler = PatchSampler(data.train, bundle.n_classes, self.config.patch_size,
                                    seed=self.config.seed + bundle.iterations, balance=balance)
        self.augmenter = Augmenter(self.config.augment, seed=self.config.seed + bundle.iterations,
                                   device=self.device)
        self.iteration = bundle.iterations
        self.run_iteration = 0
        self.last_loss = float("nan")
        self.last_validation: float | None = None
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._started = 0.0
        self._history_entry: dict | None = None  # this run's record, set when fit() ends

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

    def _step(self, x, y, w, lr: float) -> torch.Tensor:
        dev = self.device
        nb = dev.type == "cuda"
        xt = torch.as_tensor(x).to(dev, non_blocking=nb)
        yt = torch.as_tensor(y).to(dev, non_blocking=nb)
        wt = None if w is None else torch.as_tensor(w).to(dev, non_blocking=nb)
        xt, yt, wt = self.augmenter(xt, yt, wt)
        if self.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with self._autocast():
            logits = self.model(xt)
        loss = masked_loss(logits, yt, wt, self.config.dice_weight)
        if self._anchor is not None:
            with torch.no_grad(), self._autocast():
                reference = torch.softmax(self._anchor(xt).float(), dim=1)
            free = (yt < 0).unsqueeze(1).float()
            logp = torch.log_softmax(logits.float(), dim=1)
            kl = (reference * (torch.log(reference.clamp(min=1e-6)) - logp) * free).sum()
            loss = loss + self.config.anchor_weight * kl / free.sum().clamp(min=1.0)
        if self.config.edge_weight > 0:
            loss = loss + self.config.edge_weight * edge_loss(
                logits, xt, self.config.edge_sigma, free=yt < 0)
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
        if _DeviceBatches.fits(self.sampler, self.device):
            prefetch = _DeviceBatches(self.sampler, cfg.batch_size, self.device)
        else:
            prefetch = _Prefetcher(self.sampler, cfg.batch_size, pin=self.device.type == "cuda")
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
            "annotated_pixels": [int(c) for c in self.data.counts],
            "pixel_weights": bool(self.sampler.has_weights),
            "edge_weight": self.config.edge_weight,
            "anchor_weight": self.config.anchor_weight if self._anchor is not None else 0.0,
        }

    @torch.no_grad()
    def validate(self, max_slices: int = 8, max_side: int = 512) -> float | None:
        """Foreground IoU on the held-out annotated pixels (None when nothing is held out)."""
        inter = union = 0
        self.model.eval()
        try:
            for pair in self.data.validation[:max_slices]:
                img = pair.image[0, :max_side, :max_side]
                tgt = pair.target[0, :max_side, :max_side]
                x = torch.from_numpy(np.ascontiguousarray(img))[None, None].to(self.device)
                with self._autocast():
                    pred = self.model(x).argmax(1)[0].cpu().numpy()
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
            optimizer_state=opt,
        )


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
