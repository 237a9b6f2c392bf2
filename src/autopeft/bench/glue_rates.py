"""One rule for every row's learning rate: a small grid around its family's rate, scored on held-out train.

Each item (a manual method, full fine-tuning included, or a searched configuration) trains on each task
at its bench rate times each factor of the grid, one seed, at the final budget, and is scored on the
held-out slice of the training set (never on dev). Its final runs on that task use the rate that
scored best (ties: the smaller factor's distance from 1, so the family rate wins a tie). The grid's
runs are the evidence the page shows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError

if TYPE_CHECKING:
    from autopeft.bench.glue_study import Bench
    from autopeft.engine.fidelity import Fidelity

RATE_FACTORS = (1 / 3, 1.0, 3.0)  # x the family's bench rate (GLUE_LRS)
RATE_SEED = 0


def parse_factors(text: str) -> tuple[float, ...]:
    """ "0.33,1,3" -> factors; they must be positive and include 1 (the family's own rate)."""
    try:
        factors = tuple(sorted({float(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise UserError(f"--rate-grid wants comma-separated factors such as 0.33,1,3, got {text!r}") from None
    if not factors or any(not (f > 0 and math.isfinite(f)) for f in factors) or 1.0 not in factors:
        raise UserError(f"--rate-grid factors must be positive and include 1, got {text!r}")
    return factors


def grid(base: float, factors: Sequence[float]) -> list[float]:
    """The rates tried: `base` times each factor, to three significant digits."""
    return [float(f"{base * f:.3g}") for f in factors]


def rate_key(task: str, item: str, rate: float) -> str:
    return f"rate:{task}:{item}:{rate:g}"


def evidence(attrs: dict[str, Any], task: str, item: str, base: float, factors: Sequence[float]) -> dict[float, float]:
    """rate -> held-out score of the grid runs stored so far for `item` on `task`."""
    out = {}
    for rate in grid(base, factors):
        run = attrs.get(rate_key(task, item, rate))
        if run is not None and run.get("score") is not None:
            out[rate] = float(run["score"])
    return out


def chosen_rate(scores: dict[float, float], base: float) -> float | None:
    """The best-scoring rate (ties: the one nearest `base` in log scale); None before any grid run."""
    if not scores:
        return None
    return max(scores, key=lambda r: (scores[r], -abs(math.log(r / base))))


def run_grid(
    bench: Bench, items: Sequence[str], tasks: Sequence[str], fidelity: Fidelity, jobs: int, device: str | None
) -> None:
    """Every grid run of `items` on `tasks` not stored yet; each stored as it ends (a failure: score None)."""
    from autopeft.engine.workers import Job, run_jobs

    factors = bench.settings["rate_grid"]
    done = set(bench.study.user_attrs)
    todo = [
        Job(task, item, RATE_SEED, mode="search", fidelity=fidelity.replace(lr=rate))
        for task in tasks
        for item in items
        for rate in grid(bench.base_rate(item), factors)
        if rate_key(task, item, rate) not in done
    ]
    if not todo:
        return
    print(f"{len(todo)} learning-rate run(s) on held-out train", file=sys.stderr, flush=True)
    for job, result, cpu_seconds in run_jobs(todo, bench.settings["model"], bench.data, fidelity, jobs, device):
        rate = job.fidelity.lr if job.fidelity else None
        assert rate is not None
        bench.study.set_user_attr(
            rate_key(job.task, job.item, rate),
            {"score": result.headline if result.ok else None, "reason": result.reason, "cpu_seconds": cpu_seconds},
        )
        what = f"{result.headline:.4f}" if result.ok else f"failed: {result.reason}"
        print(f"rate {rate:g} for {_short(job.item)} on {job.task}: {what}", file=sys.stderr, flush=True)


def rate_table(bench: Bench, items: Sequence[str], tasks: Sequence[str]) -> list[str]:
    """Markdown: per item and task, each grid rate's held-out score, the chosen one in bold."""
    from autopeft.bench.glue_table import ROW_TITLES, task_title

    factors = bench.settings["rate_grid"]
    attrs = bench.attrs()
    lines = ["| Row | " + " | ".join(task_title(t) for t in tasks) + " |", "|---" + "|---" * len(tasks) + "|"]
    for item in items:
        base = bench.base_rate(item)
        cells = []
        for task in tasks:
            scores = evidence(attrs, task, item, base, factors)
            best = chosen_rate(scores, base)
            parts = [
                f"**{r:g}: {100 * s:.1f}**" if r == best else f"{r:g}: {100 * s:.1f}" for r, s in sorted(scores.items())
            ]
            cells.append(", ".join(parts) or "–")
        lines.append(f"| {ROW_TITLES.get(item, _short(item))} | " + " | ".join(cells) + " |")
    return lines


def _short(item: str) -> str:
    """A configuration's JSON in a few words (a method's name as it is)."""
    if not item.lstrip().startswith("{"):
        return item
    from autopeft.space import PEFTConfig

    return PEFTConfig.from_json(item).describe()
