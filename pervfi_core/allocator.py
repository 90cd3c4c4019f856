"""glibc malloc settings that make CPU inference much faster (opt-in, process-wide).

PyTorch's CPU tensors come from ``malloc``. glibc serves every block above its mmap threshold (at
most 32 MiB) with fresh pages from ``mmap`` and unmaps them on ``free``, so each large activation is
page-faulted and zeroed by the kernel again on every layer; with two threads the faults also contend
on the process's memory map. :func:`tune_malloc` keeps freed blocks in the heap for reuse instead
(``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD`` = 1 GiB), the same as starting the process with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824``. On two cores this takes the v00 core at
448×256 from about 5.2 to 2.4 s per frame (bench/bench_core.py). The cost: up to 1 GiB of freed
memory stays with the process instead of going back to the system.

The command-line tool calls it; a library user or a ComfyUI server on CPU opts in by calling it or
by the environment variables above. Does nothing (returns False) where glibc is not the C library.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

# mallopt() parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
TRIM_THRESHOLD = 1 << 30


def tune_malloc() -> bool:
    """Keep large freed blocks in the heap (module docstring). True when glibc accepted the settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        logger.debug("mallopt unavailable: malloc left as it is")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
