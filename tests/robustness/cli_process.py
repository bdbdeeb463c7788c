"""The real command line in a subprocess, optionally under a file-size limit."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_MAIN = "import sys\nfrom napari_unet.cli import main\nsys.exit(main(sys.argv[1:]))\n"
_FSIZE = ("import resource, signal\n"
          "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
          "resource.setrlimit(resource.RLIMIT_FSIZE, ({0}, {0}))\n")


def run_process(*args, cwd=None, file_size_limit: int | None = None, before: str = "",
                env: dict[str, str] | None = None,
                timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``napari-unet ARGS`` (with ``-q``) in a new Python and return it, finished.
    ``file_size_limit`` (bytes) makes every larger write fail as on a full disk;
    ``before`` is Python run before the command (for example a memory limit); ``env``
    adds environment variables."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    preamble = _FSIZE.format(int(file_size_limit)) if file_size_limit is not None else ""
    return subprocess.run([sys.executable, "-c", preamble + before + _MAIN, "-q",
                           *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def run_cli(*args, **kwargs) -> tuple[int, str]:
    """:func:`run_process`'s (exit status, stderr)."""
    proc = run_process(*args, **kwargs)
    return proc.returncode, proc.stderr


def digests(folder: Path) -> dict[str, str]:
    """The sha256 of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
