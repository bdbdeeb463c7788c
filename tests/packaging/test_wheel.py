"""The built distribution: an sdist and a wheel that pass ``twine check``, and a wheel that
installs into a fresh virtual environment where napari finds the plugin and its sample."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from napari_unet import PLUGIN_NAME

pytest.importorskip("build")
pytest.importorskip("hatchling")
pytest.importorskip("twine")

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json, sys
    import napari_unet
    from npe2 import PluginManager
    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest(napari_unet.PLUGIN_NAME)
    samples = [s.key for s in manifest.contributions.sample_data]
    import napari
    viewer = napari.Viewer(show=False)
    viewer.open_sample(napari_unet.PLUGIN_NAME, samples[0])
    layers = [(layer.name, layer.data.shape) for layer in viewer.layers]
    viewer.close()
    print(json.dumps({"module": napari_unet.__file__, "plugins": list(pm._manifests),
                      "package": manifest.package_metadata.name, "samples": samples,
                      "layers": layers}))
""")


def _run(args, cwd, env=None, timeout=600):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation",
          "--outdir", str(out), str(ROOT)], cwd=out)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    return wheels[0], sdists[0]


def test_sdist_and_wheel_pass_twine_check(dist):
    wheel, sdist = dist
    out = _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
               cwd=wheel.parent)
    assert out.count("PASSED") == 2


def _package_dirs() -> list[str]:
    """The folders the interpreter running the tests imports its installed packages from
    (a virtualenv's, a conda environment's or the system's site-packages), without any
    folder that holds ``napari_unet`` itself (a checkout, an editable install)."""
    found = [*site.getsitepackages(), *(p for p in sys.path if p.endswith("-packages"))]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    dirs: list[str] = []
    for p in found:
        if Path(p).is_dir() and not (Path(p) / "napari_unet" / "__init__.py").exists() and p not in dirs:
            dirs.append(p)
    return dirs


def _fresh_env(venv: Path) -> Path:
    """A virtual environment that sees exactly the packages of the running interpreter.

    ``--system-site-packages`` would show the *base* interpreter's packages, which in a
    virtualenv are not the ones the tests run with; instead the new environment gets a
    ``.pth`` file naming the running interpreter's package folders (after its own)."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=venv.parent).strip()
    (Path(purelib) / "_running_interpreter.pth").write_text("\n".join(_package_dirs()) + "\n")
    return python


def test_fresh_env_sees_the_running_interpreters_packages(tmp_path):
    python = _fresh_env(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import json, npe2, torch; print(json.dumps([npe2.__file__, torch.__file__]))"
    seen = json.loads(_run([str(python), "-c", probe], cwd=tmp_path, env=env).splitlines()[-1])
    import npe2
    import torch
    assert seen == [npe2.__file__, torch.__file__]


def test_wheel_installs_and_napari_finds_the_plugin(dist, tmp_path):
    wheel, _ = dist
    venv = tmp_path / "venv"
    # torch and napari come from the interpreter running the tests; the plugin only from
    # the wheel
    python = _fresh_env(venv)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
          str(wheel)], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    info = json.loads(_run([str(python), "-c", PROBE], cwd=tmp_path, env=env).splitlines()[-1])
    assert Path(info["module"]).is_relative_to(venv)  # the installed wheel, no checkout
    assert PLUGIN_NAME in info["plugins"] and info["package"] == PLUGIN_NAME and info["samples"][0] == "nuclei"
    assert info["layers"] and info["layers"][0][0] == "nuclei"
    assert len(info["layers"][0][1]) == 3  # the sample stack (Z, Y, X)
    version = _run([str(venv / "bin" / "napari-unet"), "--version"], cwd=tmp_path, env=env)
    assert version.startswith("napari-unet ")
