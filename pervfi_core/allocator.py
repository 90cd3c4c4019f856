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

:func:`trim_malloc` is the other direction, for a long-lived process that holds large results between
runs (a ComfyUI server): glibc keeps freed heap pages (the per-pair temporaries of a run; decoding
buffers a video node freed) until the top of the heap is free, which in a worker thread's arena is
rarely; ``malloc_trim(0)`` returns every free page of every arena now. The nodes run inside
:func:`trimmed` (a trim before and after a run), so that a run's peak sits on what is really held
(bench/results/comfyui-rss.md).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

# mallopt() parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
TRIM_THRESHOLD = 1 << 30


@functools.cache
def _glibc():
    """The C library if it is glibc (has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        logger.debug("glibc malloc unavailable: malloc left as it is")
        return None
    return libc


def tune_malloc() -> bool:
    """Keep large freed blocks in the heap (module docstring). True when glibc accepted the settings."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                        TRIM_THRESHOLD))


def trim_malloc() -> bool:
    """Return the free pages of every heap arena to the system (module docstring). True when glibc released
    memory."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


@contextlib.contextmanager
def trimmed():
    """:func:`trim_malloc` before the block (pages freed by earlier work) and after it (its own temporaries)."""
    trim_malloc()
    try:
        yield
    finally:
        trim_malloc()
