"""CPU execution settings shared by inference and training.

glibc returns every large freed block (the activations of a full-resolution
layer, tens of MB) to the kernel, so the next layer page-faults its memory in
again; at 512x512 that doubled the time of every elementwise op. Keeping freed
memory in the heap removes that cost at the price of holding the peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # from glibc's malloc.h


def keep_freed_memory(device_type: str = "cpu") -> bool:
    """Ask glibc to keep freed memory for reuse when computing on `device_type` "cpu" (a GPU
    holds its activations elsewhere); returns whether the setting took (False off glibc)."""
    if device_type != "cpu" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
