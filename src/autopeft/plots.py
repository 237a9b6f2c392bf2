"""Figures written to files: matplotlib without a display, each saved the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """`matplotlib.pyplot.subplots` on the file-only backend (no display is needed, or used)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: Path) -> None:
    """Lay `fig` out, write it to `path` (its folder made if missing) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def percent_axis(ax: Any, label: str = "trainable parameters (% of the backbone, log scale)") -> None:
    """A log x axis of % parameters whose ticks read as plain numbers (0.1, 0.2, 0.5, 1, ...), as many per
    decade as the drawn range leaves room for: matplotlib's default writes 3x10^-1 beside 4x10^-1 and the
    labels run into each other. Call it after drawing."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 else math.inf
    subs = (1.0, 2.0, 3.0, 5.0) if decades <= 2.5 else (1.0, 2.0, 5.0) if decades <= 4 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)


def score_limits(ax: Any, low: float, high: float, reference: float | None) -> bool:
    """Fit the y axis to the scores between `low` and `high`, widened to a `reference` line (a floor) only
    when that costs at most the scores' own span: a floor far below would squeeze every difference that
    matters into a few pixels. Returns whether the reference is inside the axis."""
    span = max(high - low, 1.0)
    shown = reference is not None and low - span <= reference <= high + span
    if shown:
        low, high = min(low, reference), max(high, reference)
    pad = 0.08 * max(high - low, 1.0)
    ax.set_ylim(low - pad, high + pad)
    return shown
