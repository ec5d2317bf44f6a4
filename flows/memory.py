"""Let a run's process reuse the memory it frees, instead of paging in new memory.

A 10 M-row run allocates and frees dozens of arrays of 80 to 320 MB. glibc
gives each allocation over 32 MB its own ``mmap`` and unmaps it when it is
freed, so every one of them lands on fresh pages that the kernel must zero
first: on this kind of virtual machine a training run spent 17-19 s in the
kernel, much of it in ``clear_page`` (16 % of all ``perf`` samples, idle
included), on the critical path. Served from glibc's heap, which is then
not trimmed, a freed array's pages are handed to the next one as they are:
system time fell to 9-13 s. The cost is a resident size that stays at the run's
high-water mark until the process ends, which a batch run does soon after.
"""

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_KEEP_FREE_BYTES = 2**31 - 1  # free memory kept at the top of the heap (mallopt takes an int)


def reuse_freed_memory() -> bool:
    """Make glibc serve large allocations from its heap and keep what is freed.

    Returns
    -------
    bool
        True when the allocator was tuned; False where it is not glibc's
        (macOS, Windows, musl), which are left as they are.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES))
