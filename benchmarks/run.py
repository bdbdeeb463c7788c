"""Run the benchmark suites that the docs quote and print their tables.

    python benchmarks/run.py --list                  # the suites, what each runs
    python benchmarks/run.py --only NAME [NAME ...]  # some of them (names from --list)
    python benchmarks/run.py --quick                 # every suite, shortened (hours, not days)
    python benchmarks/run.py --smoke                 # every script on tiny inputs (minutes)
    python benchmarks/run.py [--device cpu|cuda]     # every suite as the docs quote it

Every suite is one script with the options its figures in the docs were made with
(``docs/performance.md``, ``docs/quality.md``, ``docs/big-data.md``); the full set takes
days on a 2-core CPU (the quality protocol alone most of it), so run the ones you need.
``--quick`` shortens the training budgets and inputs: a check of the trends, not the
figures. The GUI suite needs a display: on a headless machine run it under
``xvfb-run -a``. Each script runs in its own process; the exit status is 1 when one failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEV = "{device}"  # replaced by --device

#: name -> (script, options of the figures in the docs, options of --quick)
SUITES: dict[str, tuple[str, list[str], list[str]]] = {
    # speed
    "precision": ("speed/precision.py", [], ["--steps", "2"]),
    "augment": ("speed/augment.py", ["--device", DEV], []),
    "trainer": ("speed/trainer.py", ["--device", DEV], ["--iterations", "10"]),
    "throughput": ("speed/trainer.py", ["--throughput", "--device", DEV],
                   ["--seconds", "10"]),
    "memory": ("speed/memory.py", ["--device", DEV], []),
    "predict": ("speed/predict.py", ["--device", DEV], ["--stack", "4"]),
    # scale
    "bigimage": ("scale/bigimage.py", [], ["--side", "8192"]),
    "lazy-training": ("scale/lazy_training.py", [], ["--slices", "50"]),
    "outofcore": ("scale/outofcore.py", ["--workdir", "{workdir}/outofcore"],
                  ["--gib", "0.5"]),
    "folder": ("scale/folder.py", [], ["--n", "8", "--size", "512"]),
    "volume-memory": ("scale/volume_memory.py", ["--workdir", "{workdir}/volume-memory"],
                      ["--shape", "128", "512", "512"]),
    "volume-halo": ("scale/volume_halo.py", [], ["--seconds", "30"]),
    # quality
    "curve": ("quality/curve.py", ["--device", DEV],
              ["--seconds", "60", "--checkpoints", "15", "30", "60"]),
    "crossval": ("quality/crossval.py", [], ["--quick"]),
    "crossval-strokes": ("quality/crossval.py", ["--strokes"], ["--quick"]),
    "seeds": ("quality/seeds.py", [], ["--seconds", "30", "--seeds", "1"]),
    "seeds-cross-kind": ("quality/seeds.py", ["--cross-kind"], ["--seconds", "30", "--seeds", "1"]),
    "cores": ("quality/cores.py", [], ["--seeds", "1"]),
    "cores-volumes": ("quality/cores.py", ["--volumes"], ["--seconds", "30", "--seeds", "1"]),
    "object-size": ("quality/object_size.py", ["--seeds", "3"], ["--seconds", "30", "--seeds", "1"]),
    "screen-nuclei-start": ("quality/screen.py",
                            ["--change", "--start-model nuclei", "--predict-change=--tta",
                             "--seconds", "150", "--seeds", "2"],
                            ["--seconds", "30", "--seeds", "1"]),
    "screen-enlarge": ("quality/screen.py",
                       ["--group", "varied-to-fluo", "--change", "", "--predict-change",
                        "--rescale 2", "--seconds", "150", "--seeds", "2"],
                       ["--seconds", "30", "--seeds", "1"]),
    "membrane-errors": ("quality/membrane_errors.py", [], ["--seconds", "60"]),
    "strokes": ("quality/strokes.py", [], ["--seconds", "30", "--checkpoints", "10", "20"]),
    "instances": ("quality/instances.py", ["--device", DEV], ["--seconds", "30"]),
    "corrections": ("quality/corrections.py", ["--iterations", "40", "--more-iterations", "20"],
                    []),
    "dsb-cli": ("quality/dsb_cli.py", [], ["--seconds", "60"]),
    "guided-dsb": ("quality/guided.py", ["--data", "dsb", "--seeds", "2"],
                   ["--seeds", "1", "--rounds", "2"]),
    "guided-isbi": ("quality/guided.py", ["--data", "isbi", "--seeds", "2"],
                    ["--seeds", "1", "--rounds", "2"]),
    "review-order": ("quality/review_order.py", ["--seconds", "60", "--instance-seconds", "150"],
                     ["--seconds", "20", "--instance-seconds", "20"]),
    "volumes-strokes": ("quality/volumes.py",
                        ["--seconds", "150", "--seeds", "2", "--kinds", "annotation",
                         "--no-speed"], ["--seconds", "30", "--seeds", "1"]),
    "volumes-dense": ("quality/volumes.py",
                      ["--seconds", "150", "--seeds", "1", "--kinds", "instance", "--sets",
                       "halves", "--no-speed"], ["--seconds", "30"]),
    "volumes-speed": ("quality/volumes.py", ["--speed-only"], []),
    "plain-unet": ("plain_unet.py", [], ["--seconds", "10"]),
    # gui
    "responsiveness": ("gui/responsiveness.py", [], ["--seconds", "5"]),
}


def command(name: str, device: str, workdir: str, quick: bool, smoke: bool) -> list[str]:
    script, options, shorter = SUITES[name]
    if smoke:
        options = ["--workdir", "{workdir}/outofcore"] if name == "outofcore" else []
        options = [*options, "--smoke"]
    elif quick:
        options = [*options, *shorter]
    options = [o.replace(DEV, device).replace("{workdir}", workdir) for o in options]
    return [sys.executable, str(HERE / script), *options]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=sorted(SUITES), metavar="NAME",
                    help="run only these suites (see --list)")
    ap.add_argument("--list", action="store_true", help="list the suites and exit")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="shorter runs of every suite")
    mode.add_argument("--smoke", action="store_true", help="every script on tiny inputs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", default=None,
                    help="folder for large inputs (outofcore's stack; default: a temporary one)")
    args = ap.parse_args(argv)
    names = args.only or list(SUITES)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        if args.list:
            for name in names:
                print(f"{name:22} " + " ".join(
                    command(name, args.device, workdir, args.quick, args.smoke)[1:]))
            return 0
        failed = []
        for name in names:
            cmd = command(name, args.device, workdir, args.quick, args.smoke)
            if name == "responsiveness" and not os.environ.get("DISPLAY"):
                print(f"=== {name}: no display, skipped (run under xvfb-run -a)\n", flush=True)
                continue
            print(f"=== {name}: {' '.join(cmd[1:])}", flush=True)
            if subprocess.call(cmd, cwd=HERE.parent) != 0:
                failed.append(name)
            print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
