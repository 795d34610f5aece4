"""The machine a command runs on: the torch device, bf16 support and precision, and CPU heap settings.

Shared by inference, training and every command. glibc returns every large freed block (the activations of a full-resolution
layer, tens of MB) to the kernel, so the next layer page-faults its memory in
again; at 512x512 that doubled the time of every elementwise op. Keeping freed
memory in the heap removes that cost at the price of holding the peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import torch

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


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """A torch device from "auto" (CUDA when PyTorch sees one, else the CPU), "cpu", "cuda" (the
    process's local rank under torchrun) or "cuda:N"."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for, but PyTorch sees no CUDA device; use --device cpu")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: give auto, cpu, cuda or cuda:N") from None


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


PRECISIONS = ("auto", "bf16", "fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: fp32 throughout). "auto" is bf16 on
    CUDA and on CPUs with native bf16, where it about halves the time, and fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()):
        return torch.bfloat16
    return None
