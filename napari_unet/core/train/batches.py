"""Where the training batches come from: a sampling thread on the host, or patches cut
from training data kept on the GPU (:func:`batch_source` picks)."""

from __future__ import annotations

import queue
import threading

import torch

from napari_unet.core.io.lazy import is_lazy
from napari_unet.core.train.sampling import PatchSampler


class HostBatches:
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


class DeviceBatches:
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
        """Whether the training data go to ``device`` whole: on a GPU, when small enough,
        and never for images read lazily (those are sampled on the host, chunk by chunk)."""
        if any(is_lazy(p.image) or is_lazy(p.target) for p in sampler.pairs):
            return False
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
            xs.append(image[z, ..., y0 : y0 + p, x0 : x0 + p])
            ys.append(target[z, y0 : y0 + p, x0 : x0 + p])
            if self.sampler.has_weights:
                ws.append(weight[z, y0 : y0 + p, x0 : x0 + p] if weight is not None
                          else torch.ones((p, p), device=self.device))
        w = torch.stack(ws) if ws else None
        x = torch.stack(xs)
        return x.unsqueeze(1) if x.ndim == 3 else x, torch.stack(ys).long(), w

    def close(self) -> None:
        self.pairs = []


def batch_source(sampler: PatchSampler, batch_size: int,
                 device: torch.device) -> HostBatches | DeviceBatches:
    """Batches cut on the GPU when the training data fit there, else drawn by a thread."""
    if DeviceBatches.fits(sampler, device):
        return DeviceBatches(sampler, batch_size, device)
    return HostBatches(sampler, batch_size, pin=device.type == "cuda")
