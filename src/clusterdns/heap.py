"""Give the C heap's free pages back to the OS after a burst of short-lived objects.

Loading a cluster (an API list, a manifests read in a worker thread) decodes megabytes of
JSON/YAML into dicts that are converted to compact records and freed; glibc keeps the freed
pages (in the main arena and in the worker thread's own arena), a few MiB that count against
the Deployment's memory request for as long as the server runs. `trim()` is glibc's
`malloc_trim(0)`, which releases them in every arena; elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[], object] | None:
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: fn(0)


TRIM_HEAP = _malloc_trim()


def trim() -> None:
    """Release the heap's free pages (about 0.1 ms); a no-op without glibc."""
    if TRIM_HEAP is not None:
        TRIM_HEAP()
