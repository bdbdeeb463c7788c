"""Every benchmark script runs on tiny inputs (``--smoke``), so that none of them rots.

The scripts run in this process (torch is imported once) through their
``main(argv) -> int``; the GUI one runs in a fresh interpreter, as it opens its own viewer.
The data sets of ``../shared/data`` are replaced by a synthetic miniature with the same
file names (``_common.use_smoke_data``), so these run wherever the tests run. The figures
they print mean nothing: only that each script ran to its table.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
SUITES = ("speed", "scale", "quality")
SCRIPTS = sorted(p for suite in SUITES for p in (BENCH / suite).glob("*.py")) + [
    BENCH / "plain_unet.py"]


def test_every_script_is_smoke_tested():
    found = {p.relative_to(BENCH).as_posix() for p in BENCH.glob("*/*.py")}
    covered = {p.relative_to(BENCH).as_posix() for p in SCRIPTS} | {"gui/responsiveness.py"}
    assert found == covered - {"plain_unet.py"}


@pytest.fixture
def bench_path(monkeypatch):
    for folder in (BENCH, *(BENCH / s for s in SUITES)):
        monkeypatch.syspath_prepend(str(folder))
    # as --smoke sets them: no measurement of the CPU's speed before each run
    monkeypatch.setenv("NAPARI_UNET_PRECISION", "fp32")
    monkeypatch.setenv("NAPARI_UNET_THREADS", "1")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(BENCH).as_posix())
def test_smoke(script, bench_path, capsys):
    module = importlib.import_module(script.stem)
    assert Path(module.__file__).resolve() == script.resolve()
    assert module.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) >= 2, out  # a title and at least one row


def test_smoke_gui_responsiveness(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "NAPARI_UNET_PRECISION": "fp32", "NAPARI_UNET_THREADS": "1"}
    result = subprocess.run([sys.executable, str(BENCH / "gui" / "responsiveness.py"), "--smoke"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Stop honoured after" in result.stdout
