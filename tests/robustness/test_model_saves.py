"""Saving models: an interrupted run never replaces another one, weights that cannot be
saved where asked are saved elsewhere (or the line says they could not be), Ctrl-C during
the save lets it finish; the GUI keeps a model it could not save."""

# ruff: noqa: F811  (the GUI tests' fixtures are imported, then used as arguments)

from __future__ import annotations

import resource
import signal

import pytest

from napari_unet.core.models.checkpoint import load_bundle
from tests.napari.conftest import (  # noqa: F401  (fixtures of the GUI tests)
    autosave_dir,
    empty_workflow,
    notifications,
    tiny_settings,
)

from .cli_process import digests, run_cli
from .conftest import TINY, assert_refused, tiny_bundle
from .test_signals import LONG, _digest, _finish, _train_until_started


def _good_model(tmp_path):
    good = tmp_path / "good.pt"
    bundle = tiny_bundle()
    bundle.iterations = 50_000
    bundle.save(good)
    return good


def _interrupt(ip, lp, out, tmp_path) -> str:
    proc = _train_until_started(["--image", ip, "--labels", lp, "--out", out, "--overwrite",
                                 *LONG], tmp_path)
    proc.send_signal(signal.SIGINT)
    rc, err = _finish(proc)
    assert rc == 130, err
    return err.strip().splitlines()[-1]


def test_a_second_interrupted_run_never_replaces_the_first(image_pair, tmp_path):
    ip, lp = image_pair
    good = _good_model(tmp_path)
    digest = _digest(good)
    first_line = _interrupt(ip, lp, good, tmp_path)
    first = tmp_path / "good.interrupted.pt"
    assert first_line.endswith(f"saved to {first}"), first_line
    first_digest = _digest(first)
    second_line = _interrupt(ip, lp, good, tmp_path)
    second = tmp_path / "good.interrupted-2.pt"
    assert second_line.endswith(f"saved to {second}"), second_line
    assert _digest(first) == first_digest and _digest(good) == digest
    assert load_bundle(first).iterations >= 1 and load_bundle(second).iterations >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _env(tmp_path) -> dict[str, str]:
    """A temporary folder and a home of the test's own, where rescued weights go."""
    (tmp_path / "tmpdir").mkdir()
    (tmp_path / "home").mkdir()
    return {"TMPDIR": str(tmp_path / "tmpdir"), "HOME": str(tmp_path / "home")}


def test_a_file_size_limit_at_the_end_says_the_weights_could_not_be_saved(image_pair,
                                                                          tmp_path):
    """Under a file-size limit every folder fails: the old model stays and the line says
    where the weights were tried, instead of losing them without a word."""
    ip, lp = image_pair
    good = _good_model(tmp_path)
    env = _env(tmp_path)
    before = digests(tmp_path)
    result = run_cli("train", "--image", ip, "--labels", lp, "--out", good, "--overwrite",
                     *TINY, file_size_limit=4096, env=env)
    assert_refused(result, rf"^napari-unet: error: File too large: {good}; the trained "
                           r"weights \(2 iterations in all\) could not be saved anywhere "
                           rf"else either \(tried {tmp_path / 'tmpdir'}, "
                           rf"{tmp_path / 'home'}\): free some space and train again$")
    assert digests(tmp_path) == before


#: A disk full for the folder of --out only: creating a file there fails with ENOSPC, as
#: on a full disk (the other folders are on another disk).
_FULL_THERE = """\
import errno, os
_full = os.path.realpath(os.environ["FULL_FOLDER"])
_open = os.open
def _refuse(path, flags, *args, **kwargs):
    if flags & os.O_CREAT and os.path.realpath(os.path.dirname(os.fspath(path))) == _full:
        raise OSError(errno.ENOSPC, "No space left on device", os.fspath(path))
    return _open(path, flags, *args, **kwargs)
os.open = _refuse
"""


def test_weights_that_cannot_be_saved_at_out_are_saved_elsewhere(image_pair, tmp_path):
    ip, lp = image_pair
    models = tmp_path / "models"
    models.mkdir()
    out = models / "new.pt"
    env = {**_env(tmp_path), "FULL_FOLDER": str(models)}
    rc, err = run_cli("train", "--image", ip, "--labels", lp, "--out", out, *TINY,
                      before=_FULL_THERE, env=env)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    rescued = list((tmp_path / "tmpdir").glob("new.rescued-*.pt"))
    assert len(rescued) == 1, err
    assert lines[0] == (f"napari-unet: error: No space left on device: {out}; the trained "
                        f"weights (2 iterations in all) were saved to {rescued[0]} instead: "
                        "move that file where you want it")
    assert load_bundle(rescued[0]).iterations == 2
    assert list(models.iterdir()) == []


#: Ctrl-C (or SIGTERM) arrives exactly while the model is being saved.
_SIGNAL_IN_SAVE = """\
import os, signal, torch
_save = torch.save
def _save_with_a_signal(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("format") == "napari-unet model":
        os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_IN_SAVE"]))
    return _save(obj, f, *args, **kwargs)
torch.save = _save_with_a_signal
"""


@pytest.mark.parametrize(("sig", "status", "what"), [("SIGINT", 130, "Ctrl-C"),
                                                     ("SIGTERM", 143, "SIGTERM")])
def test_a_signal_during_the_save_lets_it_finish(sig, status, what, image_pair, tmp_path):
    ip, lp = image_pair
    out = tmp_path / "m.pt"
    rc, err = run_cli("train", "--image", ip, "--labels", lp, "--out", out, *TINY,
                      before=_SIGNAL_IN_SAVE, env={"SIGNAL_IN_SAVE": sig})
    assert rc == status, err
    assert err.strip().splitlines() == [
        f"napari-unet: stopped by {what} during the save, which was finished first: the 2 "
        f"iterations of this run are in {out}"]
    assert load_bundle(out).iterations == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ip.name, lp.name, out.name])


def test_the_gui_keeps_a_model_it_could_not_save(empty_workflow, notifications,
                                                 tmp_path):
    _, widget = empty_workflow
    panel = widget.train.model
    model = tmp_path / "trained.pt"
    bundle = tiny_bundle()
    bundle.iterations = 1234
    bundle.save(model)
    assert panel.load_model(model)
    target = tmp_path / "copy.pt"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # a full disk, for this process
    try:
        saved = panel.save_model(target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert not saved and not target.exists()
    assert any(m == f"Could not save the model to {target}: File too large. The model (1234 "
                    "iterations) is kept here: free some space or choose another folder, and "
                    "Save again." for m in notifications), notifications
    assert widget.session.bundle is not None and panel.save_model(target)
    assert load_bundle(target).iterations == 1234
