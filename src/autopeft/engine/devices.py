"""Which device trains, at which precision, and how many trials fit on it at once.

Checked before any work, so that a run that cannot go through stops with one line (a UserError)
instead of failing inside its first trial. torch is imported where used: the CLI calls
`check_device` while parsing.

Memory of one GPU trial, for `--jobs`: the fp32 backbone, and for full fine-tuning its gradients
and AdamW's two moments (4 x the weights), plus activations and the worker's CUDA context, taken as
a flat 1.5 GiB (batch 32 x 128 tokens on a base-size encoder needs well under that).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from autopeft.engine.fidelity import PRECISIONS
from autopeft.errors import UserError

if TYPE_CHECKING:
    import torch

WEIGHT_COPIES = 4  # weights, gradients, AdamW exp_avg and exp_avg_sq (full fine-tuning, the worst case)
TRIAL_OVERHEAD = 1.5 * 2**30  # bytes: activations and a CUDA context per worker


def resolve_device(device: str | None) -> str:
    """`device`, or the engine's default: "cuda" when a CUDA device is available, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype torch.autocast computes in at `precision`; None for fp32 (no autocast at all)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def check_device(device: str | None, precision: str = "fp32", jobs: int = 1, model: str | None = None) -> None:
    """Raise UserError (one line) unless `jobs` trials of `model` at `precision` can run on `device` at once.

    device: as `--device` gives it (None: cuda when available). The memory estimate is made only on
    CUDA with more than one job and a model named (see the module docstring).
    """
    if device is not None and not device.strip():
        raise UserError(f"--device {device!r} is not a device (e.g. cpu, cuda, cuda:1, mps)")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    name = resolve_device(device)
    dev = _torch_device(name)
    import torch

    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA device is available here (use --device cpu)")
        if (dev.index or 0) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"--device {name}: no MPS device is available here (use --device cpu)")
    elif dev.type != "cpu":
        raise UserError(f"--device {name}: only cpu, cuda and mps devices are supported")
    check_precision(name, precision)
    if dev.type == "cuda" and jobs > 1 and model is not None:
        check_jobs_fit(name, jobs, model)


def check_precision(device: str, precision: str) -> None:
    """Raise UserError unless `device` can train at `precision` (fp32 always can)."""
    if precision == "fp32":
        return
    dev = _torch_device(device)
    if dev.type == "cpu":
        if precision == "fp16":
            raise UserError("precision fp16 is not supported for training on the CPU; use bf16 or fp32")
        if not _cpu_bf16():
            raise UserError("precision bf16 is not supported on this CPU (torch's autocast refused it); use fp32")
    elif dev.type == "cuda":
        if not _cuda_supports(dev.index or 0, precision):
            raise UserError(f"precision {precision} is not supported on {_cuda_name(dev.index or 0)}; use fp32")
    else:
        raise UserError(f"precision {precision} is supported on cpu and cuda devices only, not {device}")


def check_jobs_fit(device: str, jobs: int, model: str) -> None:
    """Raise UserError when `jobs` trials of `model` would not fit in the free memory of CUDA `device`."""
    import torch

    from autopeft import models

    index = _torch_device(device).index or 0
    need = trial_bytes(models.dims_of(model).backbone_params)
    free, _ = torch.cuda.mem_get_info(index)
    if jobs * need > free:
        fits = max(1, int(free // need))
        raise UserError(
            f"--jobs {jobs} needs about {jobs * need / 2**30:.1f} GiB on {_cuda_name(index)} ({need / 2**30:.1f} GiB "
            f"a trial of {model}) but {free / 2**30:.1f} GiB is free; use --jobs {fits} or fewer"
        )


def trial_bytes(backbone_params: int) -> float:
    """Estimated GPU memory of one trial on a backbone of `backbone_params` fp32 parameters."""
    return backbone_params * 4 * WEIGHT_COPIES + TRIAL_OVERHEAD


def share_gpu(device: str | None, jobs: int) -> None:
    """In a worker, one of `jobs` sharing the device: cap torch's allocator at 1/jobs of a CUDA device's memory.

    Without a cap the first worker's cache grows into what the others need; with it a worker that
    outgrows its share fails its trial as out of memory instead of starving the rest.
    """
    if jobs <= 1:
        return
    name = resolve_device(device)
    dev = _torch_device(name)
    if dev.type != "cuda":
        return
    import torch

    torch.cuda.set_per_process_memory_fraction(1 / jobs, dev.index or 0)


def _torch_device(name: str) -> torch.device:
    import torch

    try:
        return torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"--device {name!r} is not a device (e.g. cpu, cuda, cuda:1, mps)") from None


@functools.cache
def _cpu_bf16() -> bool:
    # Ask torch by running it: CPU autocast to bf16 works wherever oneDNN does (slowly without AVX512-BF16 or AMX).
    import torch

    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
        return out.dtype == torch.bfloat16 and bool(torch.isfinite(out).all())
    except RuntimeError:
        return False


def _cuda_supports(index: int, precision: str) -> bool:
    import torch

    if precision == "bf16":
        # native bf16 only (Ampere onwards): emulated bf16 on older GPUs is slower than fp32
        with torch.cuda.device(index):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.cuda.get_device_capability(index) >= (5, 3)  # fp16 arithmetic: Maxwell (sm_53) onwards


def _cuda_name(index: int) -> str:
    import torch

    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
