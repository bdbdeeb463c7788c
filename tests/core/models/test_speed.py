"""Speed settings measured on this CPU (napari_unet.core.models.speed)."""

from __future__ import annotations

import json

import pytest

from napari_unet.core.models import speed
from napari_unet.core.models.speed import CpuSpeed


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No overrides, an empty cache folder, nothing remembered from earlier calls."""
    monkeypatch.delenv("NAPARI_UNET_PRECISION", raising=False)
    monkeypatch.delenv("NAPARI_UNET_THREADS", raising=False)
    monkeypatch.setenv("NAPARI_UNET_CACHE_DIR", str(tmp_path))
    speed.cpu_speed.cache_clear()
    speed.cpu_choice.cache_clear()
    yield tmp_path
    speed.cpu_speed.cache_clear()
    speed.cpu_choice.cache_clear()


def test_measure_times_every_setting():
    measured = speed.measure_cpu(steps=1, batch=1, patch=32)
    cores = speed.logical_cores()
    import torch

    candidates = set(speed.thread_candidates(cores, torch.get_num_threads()))
    assert set(measured.fp32) == candidates
    assert set(measured.bf16) == (candidates if speed.oneDNN_bf16() else set())
    assert all(t > 0 for t in [*measured.fp32.values(), *measured.bf16.values()])
    assert measured.threads in candidates
    assert measured.cpu == speed.cpu_name() and measured.cores == cores


def test_measure_during_a_prediction():
    """The first prediction of a process on a machine not measured yet measures it from
    inside torch.no_grad."""
    import torch

    with torch.no_grad():
        measured = speed.measure_cpu(steps=1, batch=1, patch=32)
    assert all(t > 0 for t in measured.fp32.values())


def _speed(fp32, bf16=None):
    return CpuSpeed("cpu", 2, "torch", fp32, bf16 or {})


def test_bf16_only_when_clearly_faster():
    # AVX-512 without bf16 instructions: bf16 emulated, 2.6x slower.
    assert not _speed({2: 0.27, 1: 0.45}, {2: 0.70, 1: 1.2}).use_bf16
    assert not _speed({2: 0.27, 1: 0.45}, {2: 0.26, 1: 0.4}).use_bf16  # inside the noise
    native = _speed({2: 0.27, 1: 0.45}, {2: 0.12, 1: 0.2})
    assert native.use_bf16 and native.threads == 2
    assert not _speed({2: 0.27}).use_bf16


def test_threads_are_the_fastest_in_the_chosen_precision():
    assert _speed({2: 0.5, 1: 0.3}).threads == 1  # one thread measured faster
    assert _speed({2: 0.3, 1: 0.5}, {2: 0.25, 1: 0.1}).threads == 1  # bf16's best count


def test_thread_candidates():
    assert speed.thread_candidates(2, 2) == [2, 1]
    assert speed.thread_candidates(16, 8) == [16, 15, 8]
    assert speed.thread_candidates(1, 1) == [1]


def test_measurement_is_cached_per_machine(fresh, monkeypatch):
    calls = []
    measured = _speed({2: 0.3, 1: 0.5}, {2: 0.7, 1: 0.9})
    monkeypatch.setattr(speed, "measure_cpu", lambda: calls.append(1) or measured)
    monkeypatch.setattr(speed, "machine_busy", lambda *_: False)
    choice = speed.cpu_choice()
    assert (choice.threads, choice.bf16) == (2, False)
    entries = json.loads((fresh / "cpu_speed.json").read_text())
    assert len(entries) == 1 and next(iter(entries.values()))["bf16"]["2"] == 0.7
    speed.cpu_speed.cache_clear()
    speed.cpu_choice.cache_clear()
    assert speed.cpu_speed() == measured and speed.cpu_speed().source == "cache"
    assert calls == [1]


def test_busy_machine_measures_again_next_time(fresh, monkeypatch):
    monkeypatch.setattr(speed, "measure_cpu", lambda: _speed({2: 0.3}))
    monkeypatch.setattr(speed, "machine_busy", lambda *_: True)
    speed.cpu_speed()
    assert not (fresh / "cpu_speed.json").exists()


def test_damaged_cache_is_measured_again(fresh, monkeypatch):
    (fresh / "cpu_speed.json").write_text("{not json")
    monkeypatch.setattr(speed, "measure_cpu", lambda: _speed({2: 0.3}))
    monkeypatch.setattr(speed, "machine_busy", lambda *_: False)
    assert speed.cpu_speed().source == "measured"
    assert json.loads((fresh / "cpu_speed.json").read_text())


def test_environment_overrides(fresh, monkeypatch):
    monkeypatch.setattr(speed, "measure_cpu", lambda: pytest.fail("must not measure"))
    monkeypatch.setenv("NAPARI_UNET_PRECISION", "fp32")
    monkeypatch.setenv("NAPARI_UNET_THREADS", "3")
    choice = speed.cpu_choice()
    assert (choice.threads, choice.bf16) == (3, False)


def test_override_precision_keeps_measured_threads(fresh, monkeypatch):
    monkeypatch.setattr(speed, "measure_cpu", lambda: _speed({2: 0.5, 1: 0.3}, {2: 0.1, 1: 0.1}))
    monkeypatch.setattr(speed, "machine_busy", lambda *_: False)
    monkeypatch.setenv("NAPARI_UNET_PRECISION", "fp32")
    choice = speed.cpu_choice()
    assert (choice.threads, choice.bf16) == (1, False)


def test_trainer_uses_the_choice(fresh, monkeypatch):
    """The GUI leaves one core to the viewer; the command line takes the fastest count."""
    from napari_unet.core.models.device import cpu_threads

    monkeypatch.setenv("NAPARI_UNET_PRECISION", "fp32")
    monkeypatch.setenv("NAPARI_UNET_THREADS", "2")
    monkeypatch.setattr(speed, "logical_cores", lambda: 2)
    assert cpu_threads(leave_one_free=False) == 2
    assert cpu_threads(leave_one_free=True) == 1


def test_other_work_during_the_measurement_counts_as_busy():
    """A process spinning on a core while this one waits: the machine was busy."""
    import subprocess
    import sys
    import time

    before, start = speed.cpu_seconds(), time.perf_counter()
    if before is None:
        pytest.skip("no /proc/stat on this system")
    subprocess.run([sys.executable, "-c",
                    "import time\nend = time.perf_counter() + 1.5\n"
                    "while time.perf_counter() < end: pass"], check=True)
    assert speed.machine_busy(before, time.perf_counter() - start)
