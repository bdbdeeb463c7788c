"""Run every benchmark and print their tables (about 40 minutes on a 2-core CPU).

    python benchmarks/run.py [--quick] [--device cpu|cuda]

``--quick`` shortens the quality runs to a minute. The responsiveness benchmark needs a
display: on a headless machine run this under ``xvfb-run -a``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = ["--device", args.device]
    quality = ["--seconds", "60", "--checkpoints", "15", "30", "60"] if args.quick else []
    runs = [
        ["precision.py"],
        ["augment.py", *dev],
        ["trainer.py", *dev],
        ["memory.py", *dev],
        ["predict.py", *dev, *(["--stack", "4"] if args.quick else [])],
        ["quality.py", *dev, *quality],
        ["strokes.py", *(["--seconds", "30", "--checkpoints", "10", "20"] if args.quick else [])],
        ["instances.py", *dev, *(["--seconds", "30"] if args.quick else [])],
        ["corrections.py", *(["--seconds", "10"] if args.quick else [])],
        ["dsb_cli.py", *(["--seconds", "60"] if args.quick else [])],
        ["folder.py", *(["--n", "8", "--size", "512"] if args.quick else [])],
    ]
    if os.environ.get("DISPLAY"):
        runs.append(["responsiveness.py"])
    else:
        print("(no display: skipping responsiveness.py; run under xvfb-run -a)\n")
    failed = 0
    for script, *rest in runs:
        print(f"=== {script} {' '.join(rest)}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / script), *rest], cwd=HERE.parent)
        failed += rc != 0
        print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
