"""Resident and peak memory of this process, and handing freed memory back to the system.

Per-trial peaks on the CPU use Linux's resettable high-water mark (`/proc/self/clear_refs`, value
5, Linux >= 4.0); elsewhere the peak is the largest resident size sampled at the training steps.
On a GPU it is torch's peak allocation on the device.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_mb() -> float:
    """Resident set size now, in MiB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        # ru_maxrss is a peak, the best portable stand-in (KiB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """The peak memory of one stretch of work (a trial), in MiB."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._sampled = 0.0
        self._hwm = False

    def start(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            _CLEAR_REFS.write_text("5")  # reset the high-water mark VmHWM to the current RSS
            self._hwm = _status_mb("VmHWM") is not None
        except OSError:
            self._hwm = False
        self._sampled = rss_mb()

    def sample(self) -> None:
        """Note the resident size now (only used where the high-water mark cannot be reset)."""
        if not self._hwm and not self.device.startswith("cuda"):
            self._sampled = max(self._sampled, rss_mb())

    def peak_mb(self) -> float:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self._hwm:
            return _status_mb("VmHWM") or self._sampled
        return max(self._sampled, rss_mb())


def release_memory(device_cache: bool = True) -> None:
    """Collect garbage and return freed heap pages to the system, so resident memory stays flat across trials.

    device_cache: also hand torch's cached GPU blocks back to the driver. Between trials of one engine
    they are better kept: the next trial reuses them instead of allocating afresh, and a worker's
    allocator under a memory cap frees them itself before it would run out.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed arenas otherwise
    if not device_cache or "torch" not in sys.modules:
        return
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
