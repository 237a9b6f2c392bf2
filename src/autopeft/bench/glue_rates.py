"""One rule for every row's learning rate: a small grid around its family's rate, scored on held-out train.

Each item (a manual method, full fine-tuning included, or a searched configuration) trains on each task
at its bench rate times each factor of the grid, one seed, at the final budget, and is scored on the
held-out slice of the training set (never on dev). While the best rate is the largest (smallest) one
tried, the grid grows by one more step of its own ratio that way, at most `MAX_STEPS` steps: a best rate
at the grid's end says a better one may lie beyond (in the second edition's first grid, 16 of 24 cells).
Its final runs on that task use the rate that scored best (ties: the smaller factor's distance from 1, so
the family rate wins a tie). The runs are the evidence the page shows.
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
MAX_STEPS = 2  # beyond each end of the grid


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


def candidates(base: float, factors: Sequence[float]) -> list[float]:
    """Every rate the rule may try, in order: the grid, and `MAX_STEPS` steps beyond each of its ends (a
    step is the ratio of the grid's two outermost factors on that side)."""
    low, high = min(factors), max(factors)
    down = low / sorted(factors)[1] if len(factors) > 1 else 1 / 3
    up = high / sorted(factors)[-2] if len(factors) > 1 else 3.0
    beyond = [low * down**k for k in range(MAX_STEPS, 0, -1)] + [high * up**k for k in range(1, MAX_STEPS + 1)]
    return sorted(set(grid(base, [*factors, *beyond])))


def evidence(attrs: dict[str, Any], task: str, item: str, base: float, factors: Sequence[float]) -> dict[float, float]:
    """rate -> held-out score of the runs stored so far for `item` on `task` (failed runs left out)."""
    out = {}
    for rate in candidates(base, factors):
        run = attrs.get(rate_key(task, item, rate))
        if run is not None and run.get("score") is not None:
            out[rate] = float(run["score"])
    return out


def next_rates(attrs: dict[str, Any], task: str, item: str, base: float, factors: Sequence[float]) -> list[float]:
    """The rates to run next for `item` on `task`: the grid's missing ones, else one step beyond the end of
    what was tried when the best is there (and the rule allows another step), else none."""
    missing = [r for r in grid(base, factors) if rate_key(task, item, r) not in attrs]
    if missing:
        return missing
    best, end = best_and_end(attrs, task, item, base, factors)
    if not end:
        return []
    rates = candidates(base, factors)
    i = rates.index(best) + end
    return [rates[i]] if 0 <= i < len(rates) else []


def best_and_end(
    attrs: dict[str, Any], task: str, item: str, base: float, factors: Sequence[float]
) -> tuple[float | None, int]:
    """The best rate so far, and +1 (-1) when it is the largest (smallest) rate tried, else 0 (also with
    fewer than two scores, or a failed run tried beyond it: that one diverged)."""
    scores = evidence(attrs, task, item, base, factors)
    best = chosen_rate(scores, base)
    if best is None or len(scores) < 2:
        return best, 0
    tried = [r for r in candidates(base, factors) if rate_key(task, item, r) in attrs]
    return best, 1 if best == max(tried) else -1 if best == min(tried) else 0


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
    while True:  # the grid, then a step beyond its end where the best sits there, until no cell moves
        attrs = bench.attrs()
        todo = [
            Job(task, item, RATE_SEED, mode="search", fidelity=fidelity.replace(lr=rate))
            for task in tasks
            for item in items
            for rate in next_rates(attrs, task, item, bench.base_rate(item), factors)
        ]
        if not todo:
            return
        print(f"{len(todo)} learning-rate run(s) on held-out train", file=sys.stderr, flush=True)
        for job, result, cpu_seconds in run_jobs(todo, bench.settings["model"], bench.data, fidelity, jobs, device):
            rate = job.fidelity.lr if job.fidelity else None
            assert rate is not None
            outcome = {"score": result.headline if result.ok else None, "reason": result.reason}
            bench.study.set_user_attr(rate_key(job.task, job.item, rate), outcome | {"cpu_seconds": cpu_seconds})
            what = f"{result.headline:.4f}" if result.ok else f"failed: {result.reason}"
            print(f"rate {rate:g} for {_short(job.item)} on {job.task}: {what}", file=sys.stderr, flush=True)


def rate_table(bench: Bench, items: Sequence[str], tasks: Sequence[str]) -> list[str]:
    """Markdown: per item and task, each grid rate's held-out score, the chosen one in bold."""
    from autopeft.bench.glue_table import ROW_TITLES, task_title

    factors = bench.settings["rate_grid"]
    attrs = bench.attrs()
    lines = ["| Row | " + " | ".join(task_title(t) for t in tasks) + " |", "|---" + "|---" * len(tasks) + "|"]
    edges = chosen = 0
    for item in items:
        base = bench.base_rate(item)
        cells = []
        for task in tasks:
            scores = evidence(attrs, task, item, base, factors)
            best = chosen_rate(scores, base)
            edge = ""
            if best is not None and len(scores) > 1 and not next_rates(attrs, task, item, base, factors):
                # still the end of what was tried, the rule's last step taken: a rate beyond might do better
                edge = {1: " ↑", -1: " ↓"}.get(best_and_end(attrs, task, item, base, factors)[1], "")
                chosen, edges = chosen + 1, edges + bool(edge)
            parts = [
                f"**{r:g}: {100 * s:.1f}**{edge}" if r == best else f"{r:g}: {100 * s:.1f}"
                for r, s in sorted(scores.items())
            ]
            cells.append(", ".join(parts) or "–")
        lines.append(f"| {ROW_TITLES.get(item, _short(item))} | " + " | ".join(cells) + " |")
    if edges:
        lines += ["", f"↑ / ↓: the best rate is still the largest / smallest tried, {MAX_STEPS} steps beyond the grid"
                  f" ({edges} of {chosen} cells), so a rate further out might have done better there."]  # fmt: skip
    return lines


def _short(item: str) -> str:
    """A configuration's JSON in a few words (a method's name as it is)."""
    if not item.lstrip().startswith("{"):
        return item
    from autopeft.space import PEFTConfig

    return PEFTConfig.from_json(item).describe()
