"""Ctrl-C and SIGTERM during training: the run so far is kept, a good model never lost."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_unet.cli import Interrupted
from napari_unet.cli.train import _StopOnSignal
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig, Trainer

from .conftest import sparse_annotations, tiny_bundle

ROOT = Path(__file__).resolve().parents[2]
LONG = ["--base-channels", "4", "--depth", "2", "--batch-size", "2", "--patch-size", "32",
        "--iterations", "1000000"]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_until_started(args, tmp_path) -> subprocess.Popen:
    """Start ``napari-unet train`` and return once it reports an iteration done."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "napari_unet.cli", "train", *map(str, args)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                            cwd=tmp_path)
    seen = b""
    deadline = time.monotonic() + 300  # only a guard against a hang
    while not re.search(rb" it [1-9]", seen):
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk and time.monotonic() < deadline, seen.decode(errors="replace")
        seen += chunk
    return proc


def _finish(proc) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err.decode(errors="replace")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_on_a_new_model_saves_it(sig, status, image_pair, tmp_path):
    ip, lp = image_pair
    out = tmp_path / "new.pt"
    proc = _train_until_started(["--image", ip, "--labels", lp, "--out", out, *LONG], tmp_path)
    proc.send_signal(sig)
    rc, err = _finish(proc)
    assert rc == status, err
    last = err.strip().splitlines()[-1]
    assert re.match(r"napari-unet: stopped by (Ctrl-C|SIGTERM) after \d+ iterations; .* saved "
                    rf"to {re.escape(str(out))}$", last), err
    assert load_bundle(out).iterations >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ip.name, lp.name, out.name])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_never_replaces_a_good_model(sig, image_pair, tmp_path):
    ip, lp = image_pair
    good = tmp_path / "good.pt"
    bundle = tiny_bundle()
    bundle.iterations = 50_000
    bundle.save(good)
    digest = _digest(good)
    proc = _train_until_started(["--image", ip, "--labels", lp, "--out", good, "--overwrite",
                                 *LONG], tmp_path)
    proc.send_signal(sig)
    rc, err = _finish(proc)
    assert rc in (130, 143) and "good.interrupted.pt" in err.strip().splitlines()[-1], err
    assert _digest(good) == digest
    assert load_bundle(tmp_path / "good.interrupted.pt").iterations >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_signal_on_a_resumed_model_saves_it_in_place(image_pair, tmp_path):
    ip, lp = image_pair
    model = tmp_path / "m.pt"
    tiny_bundle().save(model)
    proc = _train_until_started(["--image", ip, "--labels", lp, "--out", model, "--resume",
                                 model, *LONG], tmp_path)
    proc.send_signal(signal.SIGINT)
    rc, err = _finish(proc)
    assert rc == 130, err
    assert load_bundle(model).iterations >= 1
    assert not (tmp_path / "m.interrupted.pt").exists()


def test_a_second_ctrl_c_quits_at_once():
    image = sparse_annotations((2, 40, 40)).astype("float32") * 100
    data = TrainingData.from_annotations([image], [sparse_annotations(image.shape)])
    trainer = Trainer(tiny_bundle(), data, TrainConfig(iterations=5, batch_size=2,
                                                       patch_size=32, device="cpu"))
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(Interrupted), _StopOnSignal(trainer, quiet=True) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.signum == signal.SIGINT and trainer.stopped
            os.kill(os.getpid(), signal.SIGINT)  # the second one raises at once
            time.sleep(5)
            raise AssertionError("the second Ctrl-C did not interrupt")
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_during_start_up_is_one_line(image_pair, tmp_path):
    """Before training starts, SIGTERM ends the run at once, without a traceback."""
    ip, lp = image_pair
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = ("import os, signal, sys\n"
              "from napari_unet import cli\n"
              "from napari_unet.cli import train\n"
              "def load(args):\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    return real(args)\n"
              "real = train._load_pairs\n"
              "train._load_pairs = load\n"
              "sys.exit(cli.main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", script, "train", "--image", str(ip),
                           "--labels", str(lp), "--out", str(tmp_path / "m.pt"), *LONG],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines() == ["napari-unet: stopped by SIGTERM; nothing was "
                                                "written"]
    assert not (tmp_path / "m.pt").exists()


def test_a_file_size_limit_during_the_model_save_is_one_line(image_pair, tmp_path):
    """A full disk or a file-size limit while saving: one line, status 2, no temporary."""
    ip, lp = image_pair
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              "from napari_unet.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "m.pt"
    proc = subprocess.run([sys.executable, "-c", script, "-q", "train", "--image", str(ip),
                           "--labels", str(lp), "--out", str(out), *LONG[:-1], "2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-unet: error: File too large"), lines
    assert str(out) in lines[0] and ".tmp" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ip.name, lp.name])
