"""The GLUE table's two editions side by side, for RESULTS.notes.md ("what changed and why"): per row and
task, the first edition's cell and rate against the second's, and each row's average.
usage: glue_editions.py [V1-STORAGE] [V2-STORAGE]  (default: the committed studies under data/studies/)
"""

import sys

import optuna

from autopeft.bench.glue import bench_name
from autopeft.bench.glue_study import Bench
from autopeft.bench.glue_table import ROW_TITLES, build_rows, task_title
from autopeft.search.storage import open_storage

DEFAULTS = ("sqlite:///data/studies/glue-minilm.db", "sqlite:///data/studies/glue-minilm-v2.db")


def edition(url: str) -> tuple[Bench, dict]:
    bench = Bench(open_storage(url, create=False), bench_name(None, "minilm"), None)
    bench.tasks, bench.methods, bench.seeds = bench.ran()
    results = bench.results()
    rates = {row: {t: next(iter(s.values()))["lr"] for t, s in by_task.items()} for row, by_task in results.items()}
    return bench, {"rows": {r.name: r for r in build_rows(results, bench.tasks)}, "rates": rates}


def cell(figures: dict, row: str, task: str) -> str:
    r = figures["rows"].get(row)
    if r is None or task not in r.cells:
        return "–"
    return f"{r.cells[task].text()} @ {figures['rates'][row][task]:g}"


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    urls = sys.argv[1:3] if len(sys.argv) > 2 else DEFAULTS
    (v1_bench, v1), (_, v2) = edition(urls[0]), edition(urls[1])
    tasks = v1_bench.tasks
    print("| Row | " + " | ".join(f"{task_title(t)} v1 | v2" for t in tasks) + " | Avg v1 | v2 |")
    print("|---|" + "---:|---:|" * len(tasks) + "---:|---:|")
    for row in dict.fromkeys([*v1["rows"], *v2["rows"]]):
        averages = [f["rows"][row].average if row in f["rows"] else None for f in (v1, v2)]
        avg = " | ".join("–" if a is None else f"{100 * a:.1f}" for a in averages)
        cells = " | ".join(f"{cell(v1, row, t)} | {cell(v2, row, t)}" for t in tasks)
        print(f"| {ROW_TITLES.get(row, row)} | {cells} | {avg} |")


main()
