"""pervfi_core.allocator.trim_malloc: freed heap pages really go back to the system (glibc only)."""
from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# In a fresh process: 2000 blocks of 100 KiB from the heap (under glibc's mmap threshold), every one freed
# but the last, so the heap's top stays in use and glibc cannot shrink the heap by itself.
SCRIPT = textwrap.dedent("""
    import ctypes, sys
    sys.path.insert(0, sys.argv[1])
    from pervfi_core.allocator import trim_malloc

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(100 * 1024) for _ in range(2000)]
    for b in blocks:
        ctypes.memset(b, 1, 100 * 1024)
    for b in blocks[:-1]:
        libc.free(b)
    held = rss_mb()
    released = trim_malloc()
    print(held, rss_mb(), released)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                    reason="malloc_trim is glibc's (Linux)")
def test_trim_returns_freed_heap_pages():
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, check=True)
    held, after, released = out.stdout.split()
    assert released == "True"
    assert float(held) - float(after) > 150, f"RSS {held} MB before the trim, {after} MB after"
