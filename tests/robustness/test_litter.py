"""Temporaries of a killed write: the next write of the same target, and a run over a
folder, remove those of ours whose process is gone, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_unet.core.io.paths import atomic_write
from napari_unet.core.io.temporary import temporary_name
from napari_unet.core.io.tiff import write_tiff
from napari_unet.core.models.checkpoint import load_bundle

from .conftest import tiny_bundle
from .hostile import ROOT, cli, temporaries


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _left_by(pid: int, target) -> object:
    """A temporary of ``target`` named as process ``pid`` would have named it."""
    name = temporary_name(target).name
    head, rest = name.rsplit(".", 2)[0], name.rsplit(".", 2)[1:]
    _, host, rand = rest[0].split("-")
    path = target.parent / f"{head}.{pid}-{host}-{rand}.{rest[1]}"
    path.write_bytes(b"half a file")
    return path


def test_a_write_removes_what_a_dead_writer_left_and_keeps_the_rest(tmp_path):
    target = tmp_path / "labels.tif"
    stale = _left_by(_dead_pid(), target)
    alive = _left_by(os.getppid(), target)  # a process that runs: its write goes on
    other = _left_by(_dead_pid(), tmp_path / "other.tif")  # another target's
    user = tmp_path / ".labels.tif.notes.tmp"  # not our pattern
    user.write_text("mine")
    write_tiff(target, np.ones((8, 8), np.uint8))
    assert not stale.exists()
    assert alive.exists() and other.exists() and user.exists()
    assert tifffile.imread(target).shape == (8, 8)


def test_a_model_save_removes_a_stale_temporary(tmp_path):
    target = tmp_path / "model.pt"
    stale = _left_by(_dead_pid(), target)
    tiny_bundle().save(target)
    assert not stale.exists() and load_bundle(target) is not None


_SLOW_WRITE = """
import sys, time
from napari_unet.core.io.paths import atomic_write
def write(tmp):
    open(tmp, "wb").write(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(600)
atomic_write(sys.argv[1], write)
"""


def test_sigkill_during_a_write_leaves_litter_that_the_next_write_removes(tmp_path):
    target = tmp_path / "model.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(target)],
                            stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    litter = temporaries(tmp_path)
    assert len(litter) == 1 and str(proc.pid) in litter[0].name
    tiny_bundle().save(target)
    assert not temporaries(tmp_path)


def test_a_folder_run_removes_stale_temporaries_of_its_outputs(tmp_path, model_file):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    out.mkdir()
    tifffile.imwrite(images / "a01.tif", np.random.default_rng(0).integers(
        0, 255, (48, 48), dtype=np.uint8))
    stale = _left_by(_dead_pid(), out / "a01_labels.tif")
    stale_zarr = temporary_name(out / "b.ome.zarr")
    stale_zarr = stale_zarr.with_name(stale_zarr.name.replace(
        f".{os.getpid()}-", f".{_dead_pid()}-"))
    stale_zarr.mkdir()
    (stale_zarr / "zarr.json").write_text("{}")
    rc, err = cli("predict", "--image", images, "--model", model_file, "--out", out)
    assert rc == 0, err
    assert not stale.exists() and not stale_zarr.exists()
    assert (out / "a01_labels.tif").is_file() and not temporaries(tmp_path)


def test_an_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "x.tif"

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)
    assert not target.exists() and not temporaries(tmp_path)
