"""Executors: ``None`` (serial), a number of processes, or any ``concurrent.futures.Executor``.

Every part of the package that spreads work (the search engine's batches and leaf MILPs,
OBBT's neurons) takes ``executor=`` in one of these forms; :class:`Workers` turns it into
something to submit to and shuts down what it created itself.  A Dask cluster is used
through ``dask.distributed.Client(...).get_executor()``.  Process pools use ``fork`` on Linux,
so scripts need no ``if __name__ == "__main__"`` guard and workers start at once.

Interruption: the workers of a pool created here ignore SIGINT, so a Ctrl-C at a
terminal (sent to the whole process group) reaches only the parent, which stops the
work and closes the pool with ``cancel=True``: queued tasks are dropped and busy
workers terminated, so no worker outlives the call.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from pyomo_relu.errors import PyomoReluError

__all__ = ["ExecutorSpec", "Workers", "ignore_interrupts", "process_context", "worker_count"]

#: What an ``executor=`` argument may be: serial (``None``), a number of processes, or an executor.
ExecutorSpec = Executor | int | None


def process_context() -> multiprocessing.context.BaseContext:
    """``fork`` on Linux (workers start at once and scripts need no ``__main__`` guard)."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it then stops the workers), and
    SIGTERM (how the parent stops them) ends a worker quietly, whatever handler it inherited
    by fork (the CLI turns SIGTERM into KeyboardInterrupt in the parent)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def worker_count(executor: Executor | None) -> int:
    """How many tasks ``executor`` runs at once (a hint; 1 when serial)."""
    if executor is None:
        return 1
    count = getattr(executor, "_max_workers", None)
    if count:
        return int(count)
    client = getattr(executor, "_client", None)  # dask.distributed ClientExecutor
    if client is not None:
        try:
            return max(1, int(sum(client.nthreads().values())))
        except Exception:  # noqa: BLE001 - a count is only a hint
            pass
    return os.cpu_count() or 2


class Workers:
    """The executor behind an ``executor=`` argument; a pool it creates is its own to close.

    >>> with Workers(None) as workers:
    ...     workers.executor is None, workers.count
    (True, 1)
    """

    def __init__(self, executor: ExecutorSpec) -> None:
        self.owned: ProcessPoolExecutor | None = None
        if isinstance(executor, bool) or not (
            executor is None or isinstance(executor, int) or hasattr(executor, "submit")
        ):
            raise PyomoReluError(
                f"executor must be None, a number of worker processes or a concurrent.futures.Executor "
                f"(e.g. dask.distributed.Client(...).get_executor()), not {executor!r}"
            )
        if isinstance(executor, int):
            if executor < 1:
                raise PyomoReluError(f"executor={executor}: give at least 1 worker process (or None)")
            if executor > 1:
                self.owned = ProcessPoolExecutor(executor, mp_context=process_context(), initializer=ignore_interrupts)
            executor = self.owned
        self.executor: Executor | None = executor
        self.count = worker_count(self.executor)

    def close(self, cancel: bool = False) -> None:
        """Shut down an owned pool (``cancel``: drop queued work and stop its processes now)."""
        if self.owned is None:
            return
        pool, self.owned = self.owned, None
        if cancel:
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:  # a worker busy in a long solve would finish it first
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(timeout=5)
        else:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        self.close(cancel=error is not None)
