"""The C heap's settings in processes that apiwatch owns (collector, indexer, capture's writer).

These processes allocate and free batches of a few hundred kilobytes (500 JSON lines, their
joined text, a marshalled batch) many times a second. With glibc's defaults a freed block past
128 KiB goes back to the kernel (a trimmed heap top, or an unmapped block) and the next batch
faults its pages in again: on this project's VM a third of the capture writer's time per event
(bench/middleware_bench.py) and about 5% of the collector's ingest throughput. Keeping freed
memory for reuse costs at most the peak the process reached anyway.

Never called in an application's own process: its allocator is its owner's business.
"""

from __future__ import annotations

import ctypes

# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: Free memory at the heap's top kept rather than given back.
TRIM_THRESHOLD = 256 << 20
#: Blocks up to this size come from the heap (glibc's largest allowed value), not from mmap.
MMAP_THRESHOLD = 32 << 20
#: Extra room asked of the kernel whenever the heap grows.
TOP_PAD = 16 << 20


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; False where there is no glibc (musl,
    macOS), which then keeps its own behaviour."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TOP_PAD, TOP_PAD),
        )
    )
