"""Predicting many files on a dask.distributed cluster.

A :class:`distributed.LocalCluster` of N worker processes of one thread each on this
computer, or the workers of an existing scheduler (for example one started by
dask-jobqueue on SLURM, PBS or LSF). The model is sent to every worker once; each task
reads its own input and writes its own outputs (atomically, as in one process); the
client gathers the summaries. ``distributed`` is an optional dependency, imported here
only when a cluster is asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from napari_unet.core.errors import InputError
from napari_unet.core.predict.files import FileResult, Job, Settings, run_job
from napari_unet.core.predict.peer import check_scheduler, from_the_wire, protocol_error

log = logging.getLogger(__name__)
#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT = 30
#: Memory a local worker process needs: Python, torch, the model and its tiles (a
#: worker predicting 1024 x 1024 tiles of a depth-4 U-Net peaks near 0.8 GiB).
WORKER_MEMORY = 1 << 30

# One predictor per worker process, kept for the tasks that follow: (bundle, options, it).
_cached: tuple[Any, tuple, Any] | None = None


def worker_predictor(bundle: Any, options: dict) -> Any:
    """The predictor of this worker for ``bundle`` (the worker's copy of the model sent
    once) and ``options``, built on its first task only: a :class:`~.tiles.Predictor`,
    or a :class:`~.volume.VolumePredictor` for a 3D model."""
    global _cached
    key = tuple(sorted(options.items()))
    if _cached is None or _cached[0] is not bundle or _cached[1] != key:
        if getattr(bundle, "dims", 2) == 3:
            from napari_unet.core.predict.volume import VolumePredictor as Predictor
        else:
            from napari_unet.core.predict.tiles import Predictor

        _cached = (bundle, key, Predictor(bundle, **options))
    return _cached[2]


def _run_on_worker(job: Job, bundle: Any, options: dict, settings: Settings,
                   read: Callable[[Path], Any]) -> FileResult:
    return run_job(job, worker_predictor(bundle, options), settings, read)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("running on a cluster needs dask.distributed: pip install "
                         "'napari-unet[cluster]'") from None
    return distributed


def _client(workers: int | None, scheduler: str | None):
    """A client and the cluster it started (``None`` for an existing scheduler)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        check_scheduler(scheduler, CONNECT_TIMEOUT)
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except (MemoryError, ValueError) as exc:
            if from_the_wire(exc):  # a frame that declares an absurd length or shape
                detail = ("it declared a message larger than any memory"
                          if isinstance(exc, MemoryError) else str(exc).splitlines()[0][:80])
                raise protocol_error(scheduler, detail) from None
            raise InputError(f"cannot reach the dask scheduler at {scheduler} ({exc})") from None
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the dask scheduler at {scheduler} ({exc})") from None
    workers = check_workers(int(workers or 1))
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_workers(workers: int) -> int:
    """``workers`` when this computer can run that many local worker processes (one core
    and :data:`WORKER_MEMORY` each); else :class:`InputError` naming the limit.

    Refused rather than lowered: a count above the cores is a typo or a number meant for
    a cluster (``--scheduler``), and a run that silently uses fewer workers than asked is
    harder to reason about than one line that says how many fit."""
    import psutil

    cores = _cores()
    free = psutil.virtual_memory().available
    by_memory = max(1, free // WORKER_MEMORY)
    limit = int(min(cores, by_memory))
    if workers <= limit:
        return workers
    because = (f"{cores} CPU core{'s' if cores != 1 else ''}" if cores <= by_memory else
               f"{free / (1 << 30):.1f} GiB of free memory (about "
               f"{WORKER_MEMORY / (1 << 30):g} GiB per worker)")
    raise InputError(f"{workers} worker processes asked for, but this computer has "
                     f"{because}: at most {limit} local worker{'s' if limit != 1 else ''} "
                     "(one thread each); use fewer, or a scheduler whose workers run on "
                     "other computers")


def _close(client, cluster) -> None:
    """Close the client, then the local cluster. A shutdown that times out (workers
    slow to stop on a loaded computer) changes nothing that was computed: logged only."""
    for thing in (client, cluster):
        if thing is None:
            continue
        try:
            thing.close()
        except (TimeoutError, OSError) as exc:
            log.info("closing %s timed out (%s)", type(thing).__name__, exc)


@contextmanager
def connect(workers: int | None = None, scheduler: str | None = None):
    """A dask client of a new local cluster of ``workers`` processes (one thread each),
    or of the scheduler at ``scheduler``; the local cluster is shut down on leaving, also
    after Ctrl-C. The cluster's own log lines are kept quiet meanwhile."""
    _import_distributed()  # it sets its loggers' levels when imported
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # no lines about workers starting and closing
    try:
        client, cluster = _client(workers, scheduler)
        try:
            yield client
        except MemoryError as exc:  # on the wire: the peer, not this computer
            if from_the_wire(exc):
                raise protocol_error(scheduler or "the local dask cluster") from None
            raise
        finally:
            _close(client, cluster)
    finally:
        quiet.setLevel(level)


def run_on_cluster(
    jobs: Iterable[Job],
    bundle: Any,
    options: dict,
    settings: Settings,
    read: Callable[[Path], Any],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Run every job on a cluster: a new local one of ``workers`` processes, or the one
    at ``scheduler`` (``tcp://host:port``). ``options`` are the keyword arguments of
    :class:`~.tiles.Predictor`; ``read`` must be picklable (a module-level function or
    class). ``on_result`` is called in this process as each file finishes. A task that
    fails on the cluster (a worker that died) becomes an error line of its file. A local
    cluster is shut down before returning, also after Ctrl-C."""
    jobs = list(jobs)
    if not jobs:
        return []
    with connect(workers, scheduler) as client:
        from distributed import as_completed

        model = client.scatter(bundle, broadcast=True, hash=False)
        futures = {client.submit(_run_on_worker, job, model, options, settings, read,
                                 pure=False): job for job in jobs}
        results = []
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except MemoryError as exc:  # on the wire: the peer, not this computer
                if scheduler is not None and from_the_wire(exc):
                    raise protocol_error(scheduler) from None
                raise
            except Exception as exc:  # the task or its worker failed: one line for the file
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                result = FileResult(job.image, error=f"failed on the cluster "
                                                     f"({type(exc).__name__}: {detail})")
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
