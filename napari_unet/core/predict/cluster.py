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
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from napari_unet.core.errors import InputError
from napari_unet.core.predict.files import FileResult, Job, Settings, run_job

log = logging.getLogger(__name__)
#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT = 30

# One predictor per worker process, kept for the tasks that follow: (bundle, options, it).
_cached: tuple[Any, tuple, Any] | None = None


def worker_predictor(bundle: Any, options: dict) -> Any:
    """The :class:`~.tiles.Predictor` of this worker for ``bundle`` (the worker's copy
    of the model sent once) and ``options``, built on its first task only."""
    global _cached
    key = tuple(sorted(options.items()))
    if _cached is None or _cached[0] is not bundle or _cached[1] != key:
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
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot reach the dask scheduler at {scheduler} ({exc})") from None
    cluster = LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


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
        finally:
            try:
                client.close()
            finally:
                if cluster is not None:
                    cluster.close()
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
            except Exception as exc:  # the task or its worker failed: one line for the file
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                result = FileResult(job.image, error=f"failed on the cluster "
                                                     f"({type(exc).__name__}: {detail})")
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
