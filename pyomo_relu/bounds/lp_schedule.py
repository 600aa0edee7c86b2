r"""Executor and progress plumbing of OBBT: the targets of one layer, serially or in chunks on workers.

Parallel scheme
---------------
The neurons of one layer are independent.  The layer's LP is built once as numpy arrays
(row-wise CSR) in the calling process; the neurons are split into chunks (about three per
worker) and :func:`solve_chunk`, a module-level function of numpy arrays and plain data,
builds one ``highspy.Highs`` model per chunk and only changes the objective between
solves, so HiGHS warm-starts from the previous basis.  ``executor`` may be ``None``
(serial), an ``int`` (a process pool created and shut down here) or any
:class:`concurrent.futures.Executor`, e.g. ``dask.distributed.Client.get_executor()``.
The ``int`` pool uses ``fork`` on Linux.  ``time_limit`` becomes an absolute wall-clock
deadline (``time.time()``) that workers check between solves and pass to HiGHS; neurons
not reached keep their bounds.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, as_completed
from typing import Any

import numpy as np

from pyomo_relu.bounds.lp_solve import SolveSettings, solve_chunk
from pyomo_relu.bounds.rows import LinearProgram
from pyomo_relu.parallel import Workers

#: Chunks per worker when neurons are spread over an executor.
CHUNKS_PER_WORKER = 3
MIN_CHUNK = 4


class NeuronProgress:
    """A tqdm bar over neurons, shown after a second (or at once with ``progress=True``)."""

    def __init__(self, progress: bool | None, total: int, desc: str) -> None:
        self.bar: Any = None
        if progress is False or total == 0:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # optional dependency: no bar
            return
        self.bar = tqdm(
            total=total, desc=desc, unit="neuron", leave=False, delay=0.0 if progress else 1.0, dynamic_ncols=True
        )

    def update(self, n: int = 1) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ChunkRunner:
    """Solves the targets of one layer serially or on an executor (:class:`~pyomo_relu.parallel.Workers`)."""

    def __init__(self, executor: Executor | int | None, settings: SolveSettings, progress: NeuronProgress) -> None:
        self.settings, self.progress = settings, progress
        self.pool = Workers(executor)
        self.executor: Executor | None = self.pool.executor
        self.workers = self.pool.count

    def close(self, cancel: bool = False) -> None:
        """Shut down a pool of our own (``cancel``: at once, stopping busy workers)."""
        self.pool.close(cancel=cancel)

    def solve(
        self,
        lp: LinearProgram,
        cols: np.ndarray,
        coefficients: np.ndarray,
        constants: np.ndarray,
        skip_lower: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        if self.executor is None:
            return solve_chunk(lp, cols, coefficients, constants, skip_lower, self.settings, self.progress.update)
        n = constants.size
        n_chunks = max(1, min(CHUNKS_PER_WORKER * self.workers, n // MIN_CHUNK))
        futures: dict[Future, np.ndarray] = {}
        for part in np.array_split(np.arange(n), n_chunks):
            future = self.executor.submit(
                solve_chunk, lp, cols, coefficients[part], constants[part], skip_lower[part], self.settings
            )
            futures[future] = part
        lower, upper, infeasible = np.full(n, np.nan), np.full(n, np.nan), 0
        for future in as_completed(futures):
            part = futures[future]
            lower[part], upper[part], bad = future.result()
            infeasible += bad
            self.progress.update(part.size)
        return lower, upper, infeasible
