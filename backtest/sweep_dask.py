"""The sweep's Dask engine: the job goes to every worker once, points stream back, lost points run again.

Without an address it starts a LocalCluster of worker processes on loopback (no dashboard); with one it
joins that cluster (``dask scheduler`` / ``dask worker tcp://HOST:8786``; every worker needs gridbridge
installed). The job (bars, parameters, config) is scattered to all workers before any point is submitted,
so a point's task carries only its few values. When a worker dies, the scheduler runs the points it held
again on the others (up to ``distributed.scheduler.allowed-failures`` times); a point the scheduler gives
up on (``KilledWorker``) or whose shared job was lost with its workers is submitted again here, with the
job scattered again if needed, at most ``RESUBMITS`` times. Rows already received are never recomputed.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from contextlib import ExitStack

from backtest.sweep import SweepJob, run_point
from backtest.sweep_axes import Point, SweepError

RESUBMITS = 3
log = logging.getLogger(__name__)
# The nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536 (distributed's default, to hand memory back to
# the OS). Setting it turns off glibc's adaptive mmap threshold: every array over 128 KiB (a column of five
# years of minutes is 2.3 MB) is then a fresh mmap, page-faulted in and unmapped again, and the backtest's numpy
# passes ran 2-4x slower on a worker than in a local process. None unsets it (distributed's own rule) for the
# loopback cluster; workers of an existing cluster take it from their own config (docs/performance.md).
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _is_lost(exc: BaseException) -> bool:
    """Did the point fail because workers went away (run it again), not because its backtest raised?"""
    from distributed import KilledWorker

    return isinstance(exc, KilledWorker | CancelledError)


def run_on_dask(
    job: SweepJob,
    points: list[Point],
    scheduler: str | None,
    workers: int | None,
    arrived: Callable[[int, dict], None],
) -> dict[int, dict]:
    """Rows by point index; ``arrived(index, row)`` as each comes back. Raises ``SweepError``."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("--engine dask needs dask.distributed: pip install 'gridbridge[dask]'") from None
    with ExitStack() as stack:
        if scheduler is None:
            # The loopback cluster's scheduler runs in this process: its INFO lines (start, stop) would bury the
            # progress bar under gridbridge's INFO logging. Warnings (a lost worker) still show.
            quiet = logging.getLogger("distributed")
            stack.callback(quiet.setLevel, quiet.level)
            quiet.setLevel(max(quiet.getEffectiveLevel(), logging.WARNING))
            stack.enter_context(dask.config.set(WORKER_CONFIG))
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,  # the backtest is pure Python: one point per process at a time
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # No dashboard; the scheduler's small HTTP endpoint (health, metrics) would still take 8787 by
                # default, on loopback: a port of its own instead, so two sweeps never warn about it.
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            )
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler))
            except (OSError, TimeoutError) as exc:
                raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        return _run(client, job, points, arrived)


def _run(client, job: SweepJob, points: list[Point], arrived: Callable[[int, dict], None]) -> dict[int, dict]:
    from distributed import as_completed

    sweep_id = uuid.uuid4().hex[:8]
    [shared] = client.scatter([job], broadcast=True, hash=False)
    attempts = [0] * len(points)
    index_of: dict[str, int] = {}

    def submit(index: int):
        key = f"sweep-{sweep_id}-{index}-{attempts[index]}"
        future = client.submit(run_point, shared, points[index], key=key, pure=False)
        index_of[future.key] = index
        return future

    rows: dict[int, dict] = {}
    pending = as_completed([submit(i) for i in range(len(points))])
    for future in pending:
        index = index_of.pop(future.key)
        try:
            row = future.result()
        except Exception as exc:
            if not _is_lost(exc) or attempts[index] >= RESUBMITS:
                where = ", ".join(f"{k}={v}" for k, v in points[index])
                raise SweepError(f"point {where} failed: {type(exc).__name__}: {exc}") from exc
            attempts[index] += 1
            log.warning(
                "sweep point %d lost with its worker (%s); submitting it again", index, type(exc).__name__
            )
            if shared.status != "finished":  # its every copy died with its workers
                log.warning("the sweep's data was lost with its workers; sending it again")
                [shared] = client.scatter([job], broadcast=True, hash=False)
            pending.add(submit(index))
            continue
        finally:
            future.release()  # the row is here now: nothing of the point stays on the cluster
        rows[index] = row
        arrived(index, row)
    return rows
