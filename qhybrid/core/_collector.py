"""Python's cyclic garbage collector in qhybrid's processes.

A process that runs flows holds 0.8-1 million objects once Prefect, MLflow and Qiskit are
loaded, and each full collection walks all of them (about 0.5 s on the reference machine).
With Python's default young threshold (700 net allocations of container objects) importing
those libraries triggers about seven full collections, and a promotion one or two more.
"""

from __future__ import annotations

import functools
import gc

YOUNG_COLLECTION_THRESHOLD = 50_000
"""Net allocations of container objects between young collections (Python's default is 700):
a promotion's hundreds of thousands of short-lived objects then cause a handful of young
collections and no full one. Memory held in cycles waits a little longer for collection;
reference counting frees everything else at once, as before."""


def collect_less() -> None:
    """Raise the young collection threshold to :data:`YOUNG_COLLECTION_THRESHOLD`, never lower
    it (a process that chose a higher one keeps it), the older generations' ratios kept."""
    young, *older = gc.get_threshold()
    if young < YOUNG_COLLECTION_THRESHOLD:
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *older)


@functools.cache
def settle_collector() -> None:
    """Once per process, at its first flow run: what is loaded so far (modules, their classes
    and tables) is moved out of the collector's sight (``gc.freeze()``: it lives as long as
    the process anyway), and :func:`collect_less`."""
    gc.freeze()
    collect_less()
