"""Speed settings chosen by measuring this CPU, not by asking it what it supports.

oneDNN reports bf16 as supported on AVX-512 CPUs that have no bf16 instructions; there
bf16 autocast runs 2.5x slower than fp32. And the fastest thread count depends on the
machine (logical against physical cores, other load). So the first training or prediction
on a CPU times a few training steps of the default model (patch 128, batch 4) in fp32 and
in bf16 and with several thread counts, interleaved so that other load slows each alike,
and keeps the faster settings. bf16 is used only when it was at
least 10 % faster. The result is cached per CPU model, core count and torch version (in
``$NAPARI_UNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/napari-unet`` or
``~/.cache/napari-unet``), so the measurement (a few seconds) runs once per machine;
not when other processes used more than a tenth of the machine meanwhile: then it is
measured again next time. Deleting ``cpu_speed.json`` there measures again.
``NAPARI_UNET_PRECISION=fp32|bf16`` and ``NAPARI_UNET_THREADS=N`` override it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: bf16 must be at least this much faster than fp32 (step time ratio) to be used.
BF16_MIN_GAIN = 0.9
#: Shape of the measured training step: the CPU defaults' patch, half their batch.
BATCH, PATCH = 4, 128
CACHE_VERSION = 1


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def logical_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def oneDNN_bf16() -> bool:  # noqa: N802 - the library's name
    """Whether oneDNN can run bf16 at all here (natively or emulated)."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # pragma: no cover - builds without oneDNN
        return False


@dataclass(frozen=True)
class CpuSpeed:
    """Measured median step times (seconds) of the default model on this CPU, by thread
    count, in fp32 and (where oneDNN has bf16) in bf16."""

    cpu: str
    cores: int
    torch: str
    fp32: dict[int, float]
    bf16: dict[int, float]
    source: str = field(default="measured", compare=False)  # measured or cache

    @property
    def use_bf16(self) -> bool:
        """bf16 at its best thread count beats fp32 at its best by ``BF16_MIN_GAIN``."""
        return bool(self.bf16) and min(self.bf16.values()) < BF16_MIN_GAIN * min(
            self.fp32.values())

    @property
    def threads(self) -> int:
        """The fastest thread count in the chosen precision."""
        return self.fastest_threads(self.use_bf16)

    def fastest_threads(self, bf16: bool) -> int:
        times = self.bf16 if bf16 and self.bf16 else self.fp32
        return min(times, key=times.get)

    def summary(self) -> str:
        def times(name, measured):
            return [f"{name} {n} threads {t:.3f} s" for n, t in sorted(measured.items())]

        pick = "bf16" if self.use_bf16 else "fp32"
        return (f"{self.cpu} ({self.cores} cores, torch {self.torch}): "
                f"{', '.join(times('fp32', self.fp32) + times('bf16', self.bf16))} per "
                f"step; using {pick} with {self.threads} threads")


def thread_candidates(cores: int, default: int) -> list[int]:
    """Thread counts worth timing: torch's default (physical cores), all logical cores,
    one fewer than that."""
    return sorted({n for n in (default, cores, cores - 1) if n >= 1}, reverse=True)


def measure_cpu(steps: int = 2, batch: int = BATCH, patch: int = PATCH) -> CpuSpeed:
    """Time ``steps`` training steps (after one warm-up) for each setting, interleaved."""
    import torch
    import torch.nn.functional as F

    from napari_unet.core.models.unet import UNet, UNetConfig

    cores = logical_cores()
    default = torch.get_num_threads()
    torch.manual_seed(0)
    model = UNet.from_config(UNetConfig(base_channels=16, depth=4))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, 1, patch, patch).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, patch, patch))

    @torch.enable_grad()  # also when first asked during a prediction (under no_grad)
    def step(threads: int, bf16: bool) -> float:
        torch.set_num_threads(threads)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    candidates = thread_candidates(cores, default)
    settings = [(n, False) for n in candidates]
    if oneDNN_bf16():
        settings += [(n, True) for n in candidates]
    times: dict[tuple[int, bool], list[float]] = {s: [] for s in settings}
    try:
        for s in settings:
            step(*s)  # warm-up: oneDNN builds its kernels
        for _ in range(steps):
            for s in settings:
                times[s].append(step(*s))
    finally:
        torch.set_num_threads(default)
    med = {s: statistics.median(t) for s, t in times.items()}
    return CpuSpeed(
        cpu=cpu_name(), cores=cores, torch=torch.__version__,
        fp32={n: t for (n, bf16), t in med.items() if not bf16},
        bf16={n: t for (n, bf16), t in med.items() if bf16},
    )


def cache_dir() -> Path:
    if os.environ.get("NAPARI_UNET_CACHE_DIR"):
        return Path(os.environ["NAPARI_UNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-unet"


def _key() -> str:
    import torch

    return f"v{CACHE_VERSION}|{cpu_name()}|{logical_cores()}|{torch.__version__}"


def _read_cache(path: Path) -> CpuSpeed | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(_key())
        if entry is None:
            return None
        for name in ("fp32", "bf16"):
            entry[name] = {int(n): float(t) for n, t in entry[name].items()}
        entry["source"] = "cache"
        return CpuSpeed(**entry)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _write_cache(path: Path, speed: CpuSpeed) -> None:
    """Add this machine's entry to the cache file, atomically; failures only log."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError):
            entries = {}
        entry = asdict(speed)
        entry.pop("source")
        entries[_key()] = entry
        fd, tmp = tempfile.mkstemp(prefix=".speed-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entries, out, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.info("could not cache the CPU speed measurement in %s: %s", path, exc)


@dataclass(frozen=True)
class CpuChoice:
    """What training and prediction on this CPU use."""

    threads: int
    bf16: bool
    why: str


@functools.cache
def cpu_speed() -> CpuSpeed:
    """This CPU's step times: from the cache, or measured now (once per machine)."""
    path = cache_dir() / "cpu_speed.json"
    speed = _read_cache(path)
    if speed is None:
        before, start = cpu_seconds(), time.perf_counter()
        speed = measure_cpu()
        if machine_busy(before, time.perf_counter() - start):
            log.info("the machine was busy while its speed was measured: the result is used "
                     "for this run and measured again next time")
        else:
            _write_cache(path, speed)
    return speed


def cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds used so far by the whole machine (all processes, and time the hypervisor
    gave to others) and by this process; ``None`` where ``/proc/stat`` is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        own = os.times()
        return ((user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"),
                own.user + own.system)
    except (OSError, ValueError):
        return None


def machine_busy(before: tuple[float, float] | None, wall: float) -> bool:
    """Whether other processes used more than a tenth of the machine during the ``wall``
    seconds since ``before`` (:func:`cpu_seconds`); without ``/proc/stat``, whether the
    1-minute load exceeds half of the cores."""
    now = cpu_seconds()
    if before is None or now is None:
        try:
            return os.getloadavg()[0] > 0.5 * logical_cores()
        except OSError:  # pragma: no cover - no load average
            return False
    others = (now[0] - before[0]) - (now[1] - before[1])
    return others > 0.1 * wall * logical_cores()


@functools.cache
def cpu_choice() -> CpuChoice:
    """The thread count and precision for this CPU: measured, unless the environment
    says (``NAPARI_UNET_THREADS``, ``NAPARI_UNET_PRECISION``)."""
    precision = os.environ.get("NAPARI_UNET_PRECISION", "").strip().lower()
    threads = os.environ.get("NAPARI_UNET_THREADS", "").strip()
    if precision not in ("", "auto", "fp32", "bf16"):
        log.warning("NAPARI_UNET_PRECISION=%s is not fp32, bf16 or auto: ignored", precision)
        precision = ""
    if not (threads == "" or (threads.isdigit() and int(threads) >= 1)):
        log.warning("NAPARI_UNET_THREADS=%s is not a positive number: ignored", threads)
        threads = ""
    if precision in ("fp32", "bf16") and threads:
        choice = CpuChoice(int(threads), precision == "bf16", "set in the environment")
    else:
        speed = cpu_speed()
        bf16 = speed.use_bf16 if precision in ("", "auto") else precision == "bf16"
        choice = CpuChoice(int(threads) if threads else speed.fastest_threads(bf16), bf16,
                           f"{speed.summary()} ({speed.source})")
    if choice.bf16 and not oneDNN_bf16():
        choice = CpuChoice(choice.threads, False, choice.why + "; oneDNN has no bf16 here")
    log.info("CPU settings: %d threads, %s. %s", choice.threads,
             "bf16" if choice.bf16 else "fp32", choice.why)
    return choice
