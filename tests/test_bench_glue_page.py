"""The GLUE results table: cells, averages over seeds, the two claims' verdicts, the page."""

from __future__ import annotations

import pytest

from autopeft.bench.glue_page import Page, write_page
from autopeft.bench.glue_table import (
    aim_verdict,
    build_rows,
    flat_tasks,
    markdown_table,
    per_task_claim,
    transfer_claim,
)

TASKS = ("rte", "mrpc")


def _runs(scores: dict[str, dict[str, list[float]]], percent: dict[str, float]):
    return {
        row: {
            task: {seed: {"score": s, "params": 1000, "percent": percent[row]} for seed, s in enumerate(values)}
            for task, values in by_task.items()
        }
        for row, by_task in scores.items()
    }


PERCENT = {
    "full": 100.0,
    "pfeiffer": 0.5,
    "lora": 0.3,
    "autopeft-transfer": 0.2,
    "autopeft-transfer#2": 0.2,
    "autopeft-task": 0.4,
    "autopeft-task#2": 0.4,
}


def test_cells_average_and_paired_seed_spread():
    rows = build_rows(_runs({"lora": {"rte": [0.6, 0.7], "mrpc": [0.8, 0.9]}}, PERCENT), TASKS)
    (row,) = rows
    assert row.cells["rte"].mean == pytest.approx(0.65) and row.cells["rte"].std == pytest.approx(0.0707, abs=1e-4)
    assert row.average == pytest.approx(0.75)
    assert row.average_std == pytest.approx(0.0707, abs=1e-4)  # per-seed averages 0.7 and 0.8
    assert row.cells["rte"].text() == "65.0 ± 7.1"


def test_incomplete_rows_have_no_average_and_claims_wait():
    rows = build_rows(_runs({"lora": {"rte": [0.6]}, "autopeft-transfer": {"rte": [0.7]}}, PERCENT), TASKS)
    assert rows[0].average is None and not rows[0].complete
    assert transfer_claim(rows).holds is None
    assert per_task_claim(rows, TASKS).holds is None
    assert "–" in markdown_table(rows, TASKS, {})


def test_transfer_claim_holds_only_when_ahead_of_every_peft_method():
    scores = {
        "full": {"rte": [0.9, 0.9], "mrpc": [0.9, 0.9]},
        "pfeiffer": {"rte": [0.6, 0.62], "mrpc": [0.8, 0.8]},
        "lora": {"rte": [0.5, 0.5], "mrpc": [0.7, 0.7]},
        "autopeft-transfer": {"rte": [0.65, 0.66], "mrpc": [0.8, 0.82]},
    }
    verdict = transfer_claim(build_rows(_runs(scores, PERCENT), TASKS))
    assert verdict.holds is True and "beats 2 of 2" in verdict.text  # full fine-tuning is not a PEFT method
    scores["pfeiffer"] = {"rte": [0.7, 0.7], "mrpc": [0.85, 0.85]}
    verdict = transfer_claim(build_rows(_runs(scores, PERCENT), TASKS))
    assert verdict.holds is False and "Serial adapter (Pfeiffer)" in verdict.text and "beats 1 of 2" in verdict.text


def test_per_task_claim_against_full_fine_tuning_within_seed_spread():
    scores = {
        "full": {"rte": [0.60, 0.70], "mrpc": [0.80, 0.90]},
        "autopeft-task": {"rte": [0.64, 0.64], "mrpc": [0.84, 0.84]},
    }
    verdict = per_task_claim(build_rows(_runs(scores, PERCENT), TASKS), TASKS)
    assert verdict.holds is True and "2 of 2 tasks" in verdict.text  # 1 point behind, within the spread
    scores["autopeft-task"] = {"rte": [0.40, 0.41], "mrpc": [0.60, 0.61]}
    verdict = per_task_claim(build_rows(_runs(scores, PERCENT), TASKS), TASKS)
    assert verdict.holds is False and "0 of 2 tasks" in verdict.text


def test_claims_use_the_row_chosen_on_held_out_train_not_the_best_on_dev():
    scores = {
        "full": {"rte": [0.6, 0.6], "mrpc": [0.8, 0.8]},
        "pfeiffer": {"rte": [0.6, 0.6], "mrpc": [0.8, 0.8]},
        "autopeft-transfer": {"rte": [0.5, 0.5], "mrpc": [0.7, 0.7]},
        "autopeft-transfer#2": {"rte": [0.9, 0.9], "mrpc": [0.9, 0.9]},  # better on dev, second on held-out
        "autopeft-task": {"rte": [0.5, 0.5], "mrpc": [0.7, 0.7]},
        "autopeft-task#2": {"rte": [0.9, 0.9], "mrpc": [0.9, 0.9]},
    }
    rows = build_rows(_runs(scores, PERCENT), TASKS)
    assert transfer_claim(rows).holds is False and per_task_claim(rows, TASKS).holds is False


def test_per_task_claim_over_the_searched_tasks_only():
    scores = {
        "full": {"rte": [0.5, 0.5], "mrpc": [0.80, 0.82]},
        "autopeft-task": {"mrpc": [0.81, 0.81]},  # RTE: its calibration found no signal, so no search
    }
    rows = build_rows(_runs(scores, PERCENT), TASKS)
    assert per_task_claim(rows, TASKS).holds is None  # without knowing why, a missing task is a missing result
    verdict = per_task_claim(rows, TASKS, unsearched=("rte",))
    assert (
        verdict.holds is True
        and "1 of 1 tasks" in verdict.text
        and "Not searched (no calibrated signal): RTE" in (verdict.text)
    )
    assert per_task_claim(rows, TASKS, unsearched=TASKS).holds is None


def test_aim_is_judged_on_searched_tasks_where_something_learns():
    floors = {"rte": 0.5, "mrpc": 0.75}
    scores = {
        "full": {"rte": [0.5, 0.5], "mrpc": [0.85, 0.85]},
        "pfeiffer": {"rte": [0.5, 0.5], "mrpc": [0.80, 0.80]},  # at 0.5 % parameters
        "lora": {"rte": [0.5, 0.5], "mrpc": [0.78, 0.78]},
        "autopeft-task": {"rte": [0.5, 0.5], "mrpc": [0.80, 0.79]},  # 0.4 %: as good within its std, smaller
    }
    rows = build_rows(_runs(scores, PERCENT), TASKS)
    verdict = aim_verdict(rows, TASKS, floors)
    assert verdict.holds is True and "1 of 1" in verdict.text  # nothing learns on RTE: not judged
    scores["autopeft-task"]["mrpc"] = [0.70, 0.71]
    assert aim_verdict(build_rows(_runs(scores, PERCENT), TASKS), TASKS, floors).holds is False
    bigger = {**PERCENT, "autopeft-task": 0.9}  # as good, but more parameters than the serial adapter
    scores["autopeft-task"]["mrpc"] = [0.80, 0.80]
    verdict = aim_verdict(build_rows(_runs(scores, bigger), TASKS), TASKS, floors)
    assert verdict.holds is False and "(not met)" in verdict.text
    verdict = aim_verdict(rows, TASKS, floors, unsearched=("mrpc",))
    assert verdict.holds is None and verdict.text.endswith("(no calibrated signal): MRPC.")
    assert "RTE" not in aim_verdict(rows, TASKS, floors, unsearched=("rte",)).text  # nothing learns there


def test_page_has_table_claims_costs_and_plot(tmp_path):
    scores = {
        "full": {"rte": [0.6, 0.7], "mrpc": [0.8, 0.9]},
        "lora": {"rte": [0.55, 0.6], "mrpc": [0.75, 0.8]},
        "autopeft-transfer": {"rte": [0.62, 0.6], "mrpc": [0.8, 0.81]},
        "autopeft-task": {"rte": [0.62, 0.6], "mrpc": [0.79, 0.8]},
    }
    page = Page(
        model="tiny-bert",
        tasks=TASKS,
        seeds=(0, 1),
        metric_names={"rte": "accuracy", "mrpc": "f1_accuracy_mean"},
        fidelity={"epochs": 3, "max_train_samples": 1000, "batch_size": 16, "max_length": 128, "warmup_ratio": 0.06},
        search={"trials": 20, "startup": 8, "sampler": "autopeft", "top": 1, "transfer_from": "rte", "fidelity": {}},
        rows=tuple(build_rows(_runs(scores, PERCENT), TASKS)),
        cells_expected=8,
        search_costs={
            "rte": {"study": "s", "trials": 20, "cpu_seconds": 7200.0, "wall_seconds": 3600.0, "floor": 0.502}
            | {"stopped": 3, "cpu_seconds_saved": 1800.0},  # with early stopping
            "mrpc": {"study": "m", "trials": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0, "best": None},
        },
        chosen={"rte": ['{"serial":8,"parallel":0,"prefix":0,"lora":0,"layers":[0,1]}']},
        machines={"host": "2 CPU threads"},
        final_cpu_seconds=3600.0,
        final_wall_seconds=1800.0,
        lrs={"full": 2e-5, "lora": 5e-4},
        notes="Why RTE stays at chance here.",
    )
    path = tmp_path / "RESULTS.md"
    figure = write_page(page, path)
    text = path.read_text()
    assert figure.is_file() and figure.stat().st_size > 5000
    assert "| RTE (acc.) | MRPC (F1/acc.) | Avg | % params |" in text
    assert "| Full fine-tuning | 65.0 ± 7.1 | 85.0 ± 7.1 | 75.0 ± 7.1 | 100 |" in text
    assert "Incomplete" not in text
    assert text.count("**holds**") + text.count("**does not hold**") == 2
    assert "| Best trial | Stopped early (CPU hours saved) |" in text
    assert "| RTE (`s`) | 20 | 2.00 | 1.00 | 50.2 | – | 3 (0.50) |" in text
    assert "| MRPC (`m`) | 0 | 0.00 | 0.00 | – | – | – |" in text
    assert "serial adapter 8 @ layers 0-1" in text
    assert "## Discussion\n\nWhy RTE stays at chance here." in text


def test_flat_tasks_are_those_where_no_row_stands_out():
    scores = {
        "full": {"rte": [0.50, 0.56], "mrpc": [0.85, 0.86]},
        "lora": {"rte": [0.52, 0.53], "mrpc": [0.70, 0.71]},
    }
    assert flat_tasks(build_rows(_runs(scores, PERCENT), TASKS), TASKS) == ["rte"]


def test_floor_row_and_daggers_on_cells_that_learnt_nothing():
    scores = {
        "full": {"rte": [0.6, 0.7], "mrpc": [0.8, 0.9]},
        "lora": {"rte": [0.527, 0.527], "mrpc": [0.748, 0.76]},  # RTE at the floor on every seed, MRPC not
    }
    table = markdown_table(
        build_rows(_runs(scores, PERCENT), TASKS), TASKS, {"rte": "accuracy"}, {"rte": 0.527, "mrpc": 0.748}
    )
    assert "| LoRA | 52.7 ± 0.0 † | 75.4 ± 0.8 |" in table
    assert "| Full fine-tuning | 65.0 ± 7.1 | 85.0 ± 7.1 |" in table
    assert table.splitlines()[-1] == "| *Constant prediction (majority class)* | *52.7* | *74.8* | *63.7* | 0 |"
    assert "Constant prediction" not in markdown_table(build_rows(_runs(scores, PERCENT), TASKS), TASKS, {})


def test_transfer_source_is_not_named_before_every_search_has_run():
    from types import SimpleNamespace

    from autopeft.bench.glue_report import _transfer

    def bench(attrs, strengths):
        source = max(strengths, key=strengths.__getitem__) if strengths else None
        return SimpleNamespace(tasks=["rte", "cola"], attrs=lambda: attrs, signal_strengths=lambda: strengths,
                               transfer_source=lambda: source)  # fmt: skip

    assert "chosen once every search has run" in _transfer(bench({}, {}))
    assert "chosen once" in _transfer(bench({"chosen:rte": ["c"]}, {"rte": 4.0}))  # CoLA's search still to run
    assert "no transferred row" in _transfer(bench({"nosignal:rte": "x", "nosignal:cola": "x"}, {}))
    assert _transfer(bench({"chosen:rte": ["c"], "nosignal:cola": "x"}, {"rte": 4.0})).startswith("from RTE,")


def test_plots_zoom_on_the_scores_and_name_a_far_floor_in_the_legend():
    from autopeft.bench.glue_fronts import draw_floor
    from autopeft.plots import percent_axis, subplots

    fig, ax = subplots()
    ax.plot([0.1, 0.3, 4.0], [80.0, 82.0, 84.0])
    draw_floor(ax, 0.0, 80.0, 84.0)  # STS-B: scores 80-84, floor 0
    low, high = ax.get_ylim()
    assert 75 < low < 80 and 84 < high < 90  # the floor does not squeeze the scores
    assert ax.get_legend_handles_labels()[1] == ["constant prediction (majority class): 0.0, below the axis"]
    percent_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "0.1" in labels and "0.3" in labels and "1" in labels and not any("10^" in t for t in labels)

    fig, ax = subplots()
    draw_floor(ax, 0.748, 77.0, 84.0)  # MRPC: the floor just below the scores stays on the axis, as a line
    assert ax.get_ylim()[0] < 74.8 and ax.get_lines()[0].get_ydata()[0] == 74.8
