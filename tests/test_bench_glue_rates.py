"""The learning-rate rule of GLUE's second edition: the grid, then steps beyond its end while the best
sits there, at most MAX_STEPS each way."""

from __future__ import annotations

import pytest

from autopeft.bench.glue_rates import MAX_STEPS, candidates, chosen_rate, evidence, grid, next_rates, rate_key

FACTORS = (0.33, 1.0, 3.0)  # as `--rate-grid 0.33,1,3` stores them


def _attrs(scores: dict[float, float | None]) -> dict:
    return {rate_key("stsb", "lora", r): {"score": s} for r, s in scores.items()}


def test_candidates_extend_the_grid_by_its_own_ratio():
    rates = candidates(1e-3, FACTORS)
    assert rates == sorted(rates) and set(grid(1e-3, FACTORS)) <= set(rates)
    assert len(rates) == 3 + 2 * MAX_STEPS
    assert rates[-1] == pytest.approx(1e-3 * 3 ** (1 + MAX_STEPS), rel=1e-2)
    assert rates[0] == pytest.approx(1e-3 / 3 ** (1 + MAX_STEPS), rel=5e-2)


def test_the_grid_first_then_a_step_beyond_the_end_where_the_best_is():
    base = 1e-3
    assert next_rates({}, "stsb", "lora", base, FACTORS) == grid(base, FACTORS)
    interior = _attrs({3.3e-4: 0.5, 1e-3: 0.8, 3e-3: 0.7})
    assert next_rates(interior, "stsb", "lora", base, FACTORS) == []
    top = _attrs({3.3e-4: 0.5, 1e-3: 0.7, 3e-3: 0.8})
    assert next_rates(top, "stsb", "lora", base, FACTORS) == [9e-3]
    bottom = _attrs({3.3e-4: 0.8, 1e-3: 0.7, 3e-3: 0.1})
    assert next_rates(bottom, "stsb", "lora", base, FACTORS) == [1.09e-4]


def test_the_steps_stop_where_the_score_turns_or_after_max_steps():
    base = 1e-3
    turned = _attrs({3.3e-4: 0.5, 1e-3: 0.7, 3e-3: 0.8, 9e-3: 0.6})
    assert next_rates(turned, "stsb", "lora", base, FACTORS) == []
    assert chosen_rate(evidence(turned, "stsb", "lora", base, FACTORS), base) == 3e-3
    climbing = _attrs({3.3e-4: 0.5, 1e-3: 0.6, 3e-3: 0.7, 9e-3: 0.8, 2.7e-2: 0.9})
    assert next_rates(climbing, "stsb", "lora", base, FACTORS) == []  # MAX_STEPS taken
    assert chosen_rate(evidence(climbing, "stsb", "lora", base, FACTORS), base) == 2.7e-2


def test_a_failed_run_is_tried_but_not_evidence():
    base = 1e-3
    failed_top = _attrs({3.3e-4: 0.5, 1e-3: 0.8, 3e-3: None})  # diverged: the best is inside what was tried
    assert next_rates(failed_top, "stsb", "lora", base, FACTORS) == []
    assert evidence(failed_top, "stsb", "lora", base, FACTORS) == {3.3e-4: 0.5, 1e-3: 0.8}


def test_the_page_marks_a_best_rate_still_at_the_end_of_what_was_tried():
    from types import SimpleNamespace

    from autopeft.bench.glue_rates import rate_table

    def table(scores: dict[float, float | None]) -> list[str]:
        bench = SimpleNamespace(settings={"rate_grid": list(FACTORS)}, attrs=lambda: _attrs(scores),
                                base_rate=lambda item: 1e-3)  # fmt: skip
        return rate_table(bench, ["lora"], ["stsb"])

    climbing = table({3.3e-4: 0.5, 1e-3: 0.6, 3e-3: 0.7, 9e-3: 0.8, 2.7e-2: 0.9})
    assert "**0.027: 90.0** ↑" in climbing[2] and "(1 of 1 cells)" in climbing[-1]
    diverged_beyond = table({3.3e-4: 0.5, 1e-3: 0.8, 3e-3: None})  # the best is inside what was tried
    assert "**0.001: 80.0** |" in diverged_beyond[2] and len(diverged_beyond) == 3  # no mark, no count line
    pending = table({3.3e-4: 0.5, 1e-3: 0.7, 3e-3: 0.8})  # the rule has a step left: not marked yet
    assert "↑" not in "".join(pending)
