"""Two lanes on the CPU: independent parts of a demo run side by side, each on half the cores.

The demo's models are tiny, so a step is many small operations that a second thread barely shares: on 2 cores a
second thread makes the language model's pretraining 1.47x faster, a second process doing other work 2x. The thread
counts are fixed for the whole of each part, so a part trains the same way on every run.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


@contextmanager
def second_lane() -> Iterator[Callable]:
    """Yields `start(function, *args, **kwargs)`, which runs the call in a fresh process on half of this process's
    threads and returns its pending result (`.get()` waits for it and re-raises its error). This process keeps the
    other half until the block ends. The lane's process is stopped when the block ends, also on an error here."""
    threads = torch.get_num_threads()
    lane_threads = max(1, threads // 2)
    # "spawn": a forked child of a process that has run OpenMP threads can hang in its first parallel region.
    pool = multiprocessing.get_context("spawn").Pool(1, initializer=_set_threads, initargs=(lane_threads,))
    torch.set_num_threads(max(1, threads - lane_threads))
    try:
        yield lambda function, *args, **kwargs: pool.apply_async(function, args, kwargs)
    finally:
        torch.set_num_threads(threads)
        pool.terminate()
        pool.join()
