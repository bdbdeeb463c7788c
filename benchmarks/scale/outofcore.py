"""Predicting a stack larger than the memory allowed: peak RSS and throughput, one
process against a dask LocalCluster.

Creates once (cached in ``--workdir``) a tiled TIFF stack of ``--gib`` GiB of uint8
(slices of ``--side`` x ``--side``, mosaics of the nuclei sample) and predicts it with
``napari-unet predict --out NAME.ome.zarr --instances`` as a user runs it, in a child
process: one process (torch's threads on every core), one process of one thread, and
``--workers W`` (W processes of one thread each); ``--runs`` picks some of them. The
whole tree of processes (the command, and the cluster's scheduler, nannies and workers)
is sampled every 100 ms (the list of processes every second); a run in which one
process's resident memory (RSS) passes ``--limit-gib`` (as a dask worker's memory limit
applies to each worker) is stopped and the script fails; the sum over the tree is printed
too, and the CPU seconds (user + system) of the whole tree, so that the cluster's overhead
is compared per core given and per CPU second used. The labels of every run are compared,
slice by slice, id for id. The model is a small U-Net (``--base``, ``--depth``, random
weights: the speed and the memory, not the quality, are measured) unless ``--model``
names one.

    python benchmarks/scale/outofcore.py --workdir /tmp/outofcore [--gib 8] [--limit-gib 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import contextlib
import os
import subprocess
import tempfile
import time

import numpy as np
from _common import add_smoke, table

ROOT = Path(__file__).resolve().parents[2]
TILE = 512
#: Seconds between two readings of the processes' memory.
SAMPLE = 0.1


def cpu_name() -> str:
    from napari_unet.core.models.speed import cpu_name as name

    return name()


def base_slices(side: int, n: int = 8) -> list[np.ndarray]:
    """``n`` uint8 mosaics of the rotated slices of the nuclei sample."""
    import tifffile

    from napari_unet.samples import sample_path

    slices = tifffile.imread(sample_path("nuclei")).astype(np.float32)
    lo, hi = np.percentile(slices, [0.5, 99.9])
    slices = np.clip((slices - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    reps = -(-side // slices.shape[-1])
    out = []
    for _ in range(n):
        rows = [np.concatenate([np.rot90(slices[rng.integers(len(slices))], rng.integers(4))
                                for _ in range(reps)], axis=1) for _ in range(reps)]
        out.append(np.ascontiguousarray(np.concatenate(rows, axis=0)[:side, :side]))
    return out


def make_stack(workdir: Path, gib: float, side: int) -> Path:
    """The tiled TIFF stack of ``gib`` GiB, written once (atomically) and reused."""
    import tifffile

    depth = max(1, int(round(gib * 1024**3 / side**2)))
    path = workdir / f"stack_{depth}x{side}x{side}_uint8.tif"
    if path.exists():
        return path
    bases = base_slices(side)

    def tiles():
        for z in range(depth):
            page = np.roll(bases[z % len(bases)], (z * 37) % side, axis=0)
            for y in range(0, side, TILE):
                for x in range(0, side, TILE):
                    yield page[y : y + TILE, x : x + TILE]

    tmp = path.with_name(f".{path.name}.tmp")
    tifffile.imwrite(tmp, tiles(), shape=(depth, side, side), dtype=np.uint8,
                     tile=(TILE, TILE), bigtiff=True, metadata={"axes": "ZYX"})
    os.replace(tmp, path)
    return path


def small_model(workdir: Path, base: int, depth: int) -> Path:
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    path = workdir / f"small_b{base}_d{depth}.pt"
    if not path.exists():
        ModelBundle.new(UNetConfig(n_classes=2, base_channels=base, depth=depth),
                        "annotation", seed=0).save(path)
    return path


def tree_rss(procs: list, cpu: dict[int, float]) -> tuple[int, int]:
    """Resident bytes of the largest of ``procs`` (psutil processes), and of all of them;
    records each one's CPU seconds so far in ``cpu``."""
    import psutil

    sizes = []
    for p in procs:
        with contextlib.suppress(psutil.Error), p.oneshot():
            sizes.append(p.memory_info().rss)
            times = p.cpu_times()
            cpu[p.pid] = times.user + times.system
    return max(sizes, default=0), sum(sizes)


def run(cmd: list[str], env: dict, limit: int) -> tuple[float, float, int, int, bool]:
    """Seconds, CPU seconds (user + system of the whole tree), peak RSS of the largest
    process and of the whole tree, and whether every process stayed under ``limit``."""
    import resource

    import psutil

    def cpu_of_children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start, cpu_start = time.perf_counter(), cpu_of_children()
    child = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak, peak_tree, ok = 0, 0, True
    sampled: dict[int, float] = {}  # CPU seconds last seen per process
    procs, listed = [proc], 0.0
    while child.poll() is None:
        # The tree is listed again every second (listing it scans /proc: costly); the
        # memory of the processes known is read every SAMPLE seconds.
        if time.perf_counter() - listed > 1.0:
            with contextlib.suppress(psutil.Error):
                procs = [proc, *proc.children(recursive=True)]
            listed = time.perf_counter()
        largest, total = tree_rss(procs, sampled)
        peak, peak_tree = max(peak, largest), max(peak_tree, total)
        if peak > limit:
            ok = False
            for p in [*proc.children(recursive=True), proc]:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            break
        time.sleep(SAMPLE)
    _, err = child.communicate()
    seconds = time.perf_counter() - start
    # Processes reaped by their parents count in the rusage of the command; one that was
    # not (killed) counts with what the sampling last saw of it.
    cpu = max(cpu_of_children() - cpu_start, sum(sampled.values()))
    if ok and child.returncode != 0:
        sys.exit(f"the prediction failed ({child.returncode}): {err.strip()[-2000:]}")
    return seconds, cpu, peak, peak_tree, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the stack (kept for the next runs) and the outputs")
    parser.add_argument("--gib", type=float, default=8.0, help="size of the stack (uint8)")
    parser.add_argument("--side", type=int, default=2048, help="slice side in pixels")
    parser.add_argument("--limit-gib", type=float, default=2.0,
                        help="resident memory allowed to each run (whole process tree)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--base", type=int, default=4, help="small model: base channels")
    parser.add_argument("--depth", type=int, default=2, help="small model: depth")
    parser.add_argument("--runs", default="cores,one,cluster",
                        help="which runs, in this order: cores (one process, a torch thread "
                             "per core), one (one process of one thread), cluster (--workers)")
    add_smoke(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.gib, args.side, args.workers = 4 * 256**2 / 1024**3, 256, 1
        args.runs = "one,cluster"
        if args.workdir is None:
            args.workdir = Path(tempfile.mkdtemp(prefix="napari-unet-smoke-"))
    if args.workdir is None:
        parser.error("--workdir is required")
    args.workdir.mkdir(parents=True, exist_ok=True)

    import napari_unet.core.predict.blocks  # noqa: F401  (the package is importable)

    t0 = time.perf_counter()
    before = set(args.workdir.iterdir())
    stack = make_stack(args.workdir, args.gib, args.side)
    made = None if stack in before else time.perf_counter() - t0
    model = args.model or small_model(args.workdir, args.base, args.depth)
    import tifffile

    with tifffile.TiffFile(stack) as tif:
        shape = tif.series[0].shape
    pixels = float(np.prod(shape))
    limit = int(args.limit_gib * 1024**3)
    cores = os.cpu_count() or 1
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("NAPARI_UNET_PRECISION", "fp32")
    base_cmd = [sys.executable, "-m", "napari_unet.cli", "-q", "predict", "--model",
                str(model), "--image", str(stack), "--instances", "--device", "cpu",
                "--overwrite"]
    known = {
        "cores": ("one process", f"{cores} threads", cores, [],
                  {"NAPARI_UNET_THREADS": str(cores)}),
        "one": ("one process", "1 thread", 1, [], {"NAPARI_UNET_THREADS": "1"}),
        "cluster": (f"--workers {args.workers}", f"{args.workers} x 1 thread", args.workers,
                    ["--workers", str(args.workers)], {"NAPARI_UNET_THREADS": "1"}),
    }
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    if not names or any(n not in known for n in names):
        parser.error(f"--runs takes some of {', '.join(known)}, not {args.runs!r}")
    runs = [known[n] for n in names]
    rows, failed, outputs = [], [], []
    for i, (name, threads, used, extra, more_env) in enumerate(runs):
        out = args.workdir / f"labels_{i}.ome.zarr"
        seconds, cpu, peak, peak_tree, ok = run([*base_cmd, "--out", str(out), *extra],
                                                {**env, **more_env}, limit)
        if not ok:
            failed.append(f"{name} ({threads}): a process passed the limit of "
                          f"{args.limit_gib} GiB")
        outputs.append(out)
        mpx = pixels / 1e6 / seconds
        rows.append([name, threads, used, round(seconds, 1), round(cpu, 1),
                     round(cpu / seconds, 2), f"{peak / 1024**2:.0f}", f"{peak / limit:.2f}",
                     f"{peak_tree / 1024**2:.0f}", round(mpx, 2), round(mpx / used, 2),
                     round(pixels / 1e6 / cpu, 2)])
    if not failed:
        import zarr

        first = zarr.open_array(str(outputs[0] / "0"), mode="r")
        for out in outputs[1:]:
            other = zarr.open_array(str(out / "0"), mode="r")
            for z in range(shape[0]):  # every slice, id for id
                if not np.array_equal(first[z], other[z]):
                    failed.append(f"{out.name}: labels of slice {z} differ from one process's")
                    break
    by_threads = {r[1]: r for r in rows}
    cluster = next((r for r in rows if r[0].startswith("--workers")), None)
    notes = []
    for threads, what in (("1 thread", "one process of one thread"),
                          (f"{cores} threads", f"one process on {cores} threads")):
        if cluster is not None and threads in by_threads:
            base = by_threads[threads]
            notes.append(f"cluster overhead vs {what}: per core given "
                         f"{1 - cluster[10] / base[10]:+.1%}, per CPU second "
                         f"{1 - cluster[11] / base[11]:+.1%} (negative: faster)")
    gib = pixels / 1024**3
    print(table(
        f"predict a {gib:.2f} GiB uint8 stack {tuple(shape)} (tiled TIFF, {TILE}x{TILE} tiles) "
        f"into OME-Zarr with --instances, model {model.name}, fp32, on {cpu_name()}, {cores} "
        f"logical cores; limit {args.limit_gib} GiB resident per process, as a dask worker's "
        f"memory limit (stack {gib / args.limit_gib:.2f}x the limit); peak: the largest "
        "process, and all the processes of the run (command, scheduler, nannies, workers); "
        "whole command, start included; CPU s: user + system of all its processes, busy: "
        "CPU s / seconds",
        ["run", "threads", "cores", "seconds", "CPU s", "busy", "peak MiB", "of limit",
         "all MiB", "Mpx/s", "Mpx/s/core", "Mpx/CPU s"], rows,
        [14, 14, 6, 9, 9, 6, 9, 9, 8, 8, 11, 10]))
    print("\n".join(notes))
    print("stack reused from the workdir" if made is None else f"stack written in {made:.1f} s")
    if failed:
        sys.exit("FAILED: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
