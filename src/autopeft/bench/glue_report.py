"""What the GLUE page says, gathered from the bench's study: rows, searches' cost and signal, rates, floors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autopeft.bench.glue_page import Page
    from autopeft.bench.glue_study import Bench


def page_of(bench: Bench) -> Page:
    from autopeft.bench.glue_page import Page
    from autopeft.bench.glue_table import AUTOPEFT_TRANSFER, build_rows
    from autopeft.tasks.glue import TASKS
    from autopeft.tasks.metrics import headline_name

    attrs = bench.attrs()
    runs = [v for k, v in attrs.items() if k.startswith("run:")]
    results = bench.results()
    lrs = {}
    for name, by_task in results.items():
        first = next((r for seeds in by_task.values() for r in seeds.values()), None)
        if first is not None:
            lrs[name] = first["lr"]
    search = bench.settings["search"]
    costs = search_costs(bench)
    searching = any(k.startswith("chosen:") for k in attrs) or bool(costs)
    tasks, top = len(bench.tasks), search["top"]
    expected = len(bench.methods) * tasks
    if searching:  # transferred rows on every task (unless no search had signal), per-task rows where searched
        searched = [t for t in bench.tasks if f"nosignal:{t}" not in attrs]
        expected += (bench.transferred_count() * tasks if searched else 0) + top * len(searched)
        expected += tasks * (f"{AUTOPEFT_TRANSFER}-rte" in results)
    out = bench.out
    return Page(
        model=bench.settings["model"],
        tasks=tuple(bench.tasks),
        seeds=tuple(bench.seeds),
        metric_names={t: headline_name(TASKS[t].metric) for t in bench.tasks},
        fidelity=bench.settings["fidelity"],
        search=search,
        rows=tuple(build_rows(results, bench.tasks)),
        cells_expected=expected,
        search_costs=costs,
        chosen={t: bench.chosen(t) for t in bench.tasks if f"chosen:{t}" in attrs},
        machines=attrs.get("machines", {}),
        final_cpu_seconds=sum(r.get("cpu_seconds", 0.0) for r in runs),
        final_wall_seconds=sum(r.get("wall_seconds", 0.0) for r in runs),
        lrs=lrs,
        notes=notes.read_text(encoding="utf-8") if (notes := out.with_suffix(".notes.md")).is_file() else None,
        floors=bench.floors(),
        rates=_rates(bench, results),
        no_signal={t: attrs[f"nosignal:{t}"] for t in bench.tasks if f"nosignal:{t}" in attrs},
        transfer=_transfer(bench) if search["transfer_from"] == "auto" else None,
        fronts=_fronts(bench, results),
        hv_lines=_hv_lines(bench) if "rate_grid" in bench.settings else (),
    )


def search_costs(bench: Bench) -> dict[str, dict[str, Any]]:
    """task -> its search's study, trials, CPU and wall seconds, and its signal: the held-out floor (a
    constant prediction's score) and the best trial's score (the tasks searched so far); with early
    stopping, the trials stopped and the CPU seconds their unrun remainders would have cost."""
    from autopeft.bench.glue_study import study_or_none
    from autopeft.search.loop import finished_count
    from autopeft.search.record import StudyRecord
    from autopeft.search.results import completed_rows, search_cost, stopped_rows

    costs = {}
    for task in bench.tasks:
        study = study_or_none(bench.search_study_name(task), bench.storage)
        if study is not None:
            best = max((r.metric for r in completed_rows(study)), default=None)
            record = StudyRecord.load(study)
            costs[task] = {
                "study": study.study_name,
                "trials": finished_count(study),
                **search_cost(study),
                "floor": record.constant_prediction,
                "best": best,
            }
            if record.calibration is not None:  # second-edition searches: the fidelity calibration chose
                costs[task]["fidelity"] = record.fidelity.describe()
            if record.early_stop.on:
                stopped = stopped_rows(study)
                costs[task]["stopped"] = len(stopped)
                costs[task]["cpu_seconds_saved"] = sum(s.cpu_seconds_saved for s in stopped)
    return costs


def _rates(bench: Bench, results: dict[str, Any]) -> tuple[str, ...]:
    """The learning-rate evidence as markdown lines (empty without a rate grid)."""
    if "rate_grid" not in bench.settings:
        return ()
    from autopeft.bench.glue_rates import rate_table

    items = [m for m in bench.methods if m in results]
    items += list(dict.fromkeys(c for t in bench.tasks for c in bench.chosen(t)))
    return tuple(rate_table(bench, items, bench.tasks))


def _fronts(bench: Bench, results: dict[str, Any]) -> tuple[str, ...]:
    """Tasks with results, each with a front plot (second edition only)."""
    if "rate_grid" not in bench.settings:
        return ()
    return tuple(t for t in bench.tasks if any(t in by_task for by_task in results.values()))


def _hv_lines(bench: Bench) -> tuple[str, ...]:
    """The searches' hypervolume against trials, with the random searches beside them where they ran."""
    from autopeft.bench.glue_fronts import hv_table
    from autopeft.bench.glue_study import study_or_none

    searches, randoms = {}, {}
    for task in bench.tasks:
        if (study := study_or_none(bench.search_study_name(task), bench.storage)) is not None:
            searches[task] = study
        if (study := study_or_none(bench.random_study_name(task), bench.storage)) is not None:
            randoms[task] = study
    return tuple(hv_table(searches, randoms, bench.settings["search"]["trials"])) if searches else ()


def _transfer(bench: Bench) -> str:
    """Which search the transferred row comes from, and why (`--transfer-from auto`)."""
    from autopeft.bench.glue_table import task_title

    attrs = bench.attrs()
    if any(f"chosen:{t}" not in attrs and f"nosignal:{t}" not in attrs for t in bench.tasks):
        return "from the search with the strongest calibrated signal, chosen once every search has run"
    strengths = bench.signal_strengths()
    source = bench.transfer_source()
    if source is None:
        return "no search had a calibrated signal, so there is no transferred row"
    others = ", ".join(f"{task_title(t)} {m:.1f}" for t, m in strengths.items() if t != source)
    return (
        f"from {task_title(source)}, the search whose calibrated fidelity had the strongest signal (its best probe"
        f" configuration {strengths[source]:.1f} held-out standard errors above the floor"
        + (f"; the others: {others}" if others else "")
        + ")"
    )
