"""Train and Predict in a fresh interpreter, in the order a user's session imports things.

In one pytest process an earlier test may import torch or triton before any viewer exists,
which hides crashes that happen when they are first imported after napari's OpenGL canvas
(triton's LLVM against Mesa's: see napari_unet._napari._native). Here a new interpreter
opens the demo, then presses Train and Predict, with the torch that is installed and the
speed measurement a user's first run makes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("fresh_loop.py")


def test_train_and_predict_in_a_fresh_interpreter(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NAPARI_UNET_PRECISION", "NAPARI_UNET_THREADS")}
    env.update(NAPARI_UNET_CACHE_DIR=str(tmp_path / "cache"),
               NAPARI_UNET_AUTOSAVE_DIR=str(tmp_path / "autosave"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path.cwd()),
                                                        env.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(SCRIPT), "3"], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == {"torch": False, "triton": False}
    assert result["iterations"] == 3, result["status"]
    if importlib.util.find_spec("triton") is not None:
        assert result["triton_loaded"]  # the optimizer imported it after the canvas existed
    assert result["predictions_shape"] == [5, 256, 256]
    assert 0.0 < result["foreground"] < 0.6
    assert result["annotations_unchanged"]
    assert result["speed"] == "measured"  # this CPU's speed was timed, as on a first run
