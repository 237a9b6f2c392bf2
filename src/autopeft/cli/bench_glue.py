"""`autopeft bench glue`: the paper's GLUE comparison at this machine's scale, resumable, into RESULTS.md.

Rows: the manual methods (full fine-tuning and the PEFT baselines), AutoPEFT transferred (the best
Pareto configurations of a search on one task, trained on every task) and AutoPEFT per task (a
search on each task). Every row trains with the same final fidelity (epochs, training subset,
batch, length; the learning rate is each method family's default) on every task and seed, and is
scored on the task's dev set; searches score on a held-out slice of train, never on dev.

State lives in one Optuna study (`--name`, in `--storage`): each finished run is a study attribute
written the moment it ends, searches are ordinary `autopeft search` studies, so a killed run
continues where it was by running the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from autopeft.cli.options import add_fidelity_arguments, fidelity_from_args, parse_seeds
from autopeft.errors import UserError

HELP = "GLUE table: manual PEFT methods, full fine-tuning and AutoPEFT (transferred and per task) -> RESULTS.md"
# One budget for every row: 3 epochs over at most 2000 training examples, the whole dev set. Probes
# (pfeiffer, seed 0): CoLA MCC 0.07 at 1000 examples, 0.12 at 2000; RTE stays at chance at 1000. The
# head reads the mean of the tokens: MiniLM (a sentence-embedding checkpoint) has no trained
# first-token summary; with it MRPC stayed at the majority class (F1/acc. mean 0.755 vs 0.782 at 1000
# examples); on STS-B at this budget both heads learn (Pearson/Spearman 0.831 mean, 0.828 first token).
GLUE_FIDELITY = "epochs=3,max_train_samples=2000,batch_size=16,patience=10,pooling=mean"
GLUE_SEARCH_FIDELITY = "epochs=2,max_train_samples=1000,max_eval_samples=400,batch_size=16,pooling=mean"
# Learning rates for a short budget (~190 steps): the engine's defaults (1e-4 for adapters, the
# paper's for 20 epochs) leave adapters at the majority class here; 5e-5 is the top of BERT's grid.
GLUE_LRS = "adapter=1e-3,prefix=1e-3,lora=1e-3,mixed=1e-3,bitfit=1e-3,full=5e-5"
DEFAULT_METHODS = "full,pfeiffer,houlsby,parallel,prefix,lora,mam,unipelt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="minilm", help="local model folder, hub id, or minilm/tiny-bert/tiny-roberta"
    )
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE folder in the TSV layout (default: $AUTOPEFT_GLUE_DIR)")
    parser.add_argument("--tasks", help="comma-separated GLUE tasks (default: every GLUE task in the GLUE folder)")
    parser.add_argument("--methods", help=f"manual rows (default {DEFAULT_METHODS}; --report-only: the stored ones)")
    parser.add_argument("--seeds", help="training seeds of every cell (default 0,1,2; --report-only: the stored ones)")
    add_fidelity_arguments(parser, GLUE_FIDELITY)
    parser.add_argument(
        "--lrs",
        default=GLUE_LRS,
        help=f"learning rate by family or by method (parallel=1e-4), unless the fidelity sets lr (default {GLUE_LRS})",
    )
    search = parser.add_argument_group("AutoPEFT searches")
    search.add_argument("--transfer-from", default="rte", help="the task whose search is transferred (default rte)")
    search.add_argument("--search-trials", type=int, default=20, help="trials per search (default 20)")
    search.add_argument("--search-startup", type=int, default=8, help="random trials first (default 8)")
    search.add_argument("--search-fidelity", default=GLUE_SEARCH_FIDELITY, help=f"(default {GLUE_SEARCH_FIDELITY})")
    search.add_argument("--sampler", default="autopeft", help="search sampler (default autopeft)")
    search.add_argument("--surrogate", choices=("saas", "saas-map", "gp"), default="saas")
    search.add_argument("--max-params", default="1%", help="search budget, a count or %% (default 1%%)")
    search.add_argument("--top", type=int, default=1, help="Pareto configurations per search to train (default 1)")
    search.add_argument("--no-search", action="store_true", help="manual rows only")
    parser.add_argument("--storage", help="storage URL (default: $AUTOPEFT_STORAGE or sqlite:///studies/autopeft.db)")
    parser.add_argument("--name", help="the bench study (default: glue-<model>)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="search trials and final runs at once, in worker processes (default 1)"
    )
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("RESULTS.md"),
        help="the results page (default RESULTS.md); RESULTS.notes.md beside it, if there, goes in as its discussion",
    )
    parser.add_argument("--report-only", action="store_true", help="write the results page from stored runs only")


def parse_lrs(text: str) -> dict[str, float]:
    """`name=lr,...` over `GLUE_LRS`: every method family gets a learning rate; a method named here
    (`parallel=1e-4`) trains at its own instead of its family's."""
    from autopeft.methods import FAMILIES, METHODS

    lrs: dict[str, float] = {}
    for text_item in [*GLUE_LRS.split(","), *text.split(",")]:
        name, sep, value = text_item.partition("=")
        name = name.strip()
        if not text_item.strip():
            continue
        if not sep or (name not in FAMILIES and name not in METHODS):
            raise UserError(
                f"--lrs wants family=lr or method=lr (families {', '.join(FAMILIES)}; methods "
                f"{', '.join(METHODS)}), got {text_item!r}"
            )
        try:
            lrs[name] = float(value)
        except ValueError:
            raise UserError(f"--lrs {name}={value!r} is not a number") from None
        if not lrs[name] > 0:
            raise UserError(f"--lrs {name} must be positive, got {value}")
    return lrs


def glue_tasks_in(glue_dir: str | None) -> list[str]:
    """GLUE tasks whose folder is in `glue_dir` (else $AUTOPEFT_GLUE_DIR), in GLUE's order."""
    from autopeft.tasks.glue import TASKS, glue_dir_from_env

    folder = Path(glue_dir) if glue_dir else glue_dir_from_env()
    if folder is None or not folder.is_dir():
        raise UserError("no GLUE folder: pass --glue-dir or set $AUTOPEFT_GLUE_DIR (or name --tasks)")
    return [name for name, task in TASKS.items() if (folder / task.folder / "train.tsv").is_file()]


def run(args: argparse.Namespace) -> int:
    from autopeft.engine import Fidelity
    from autopeft.study import open_storage
    from autopeft.tasks import load_task

    if args.report_only:
        return _report_only(args)
    seeds = parse_seeds(args.seeds or "0,1,2")
    fidelity = fidelity_from_args(args, Fidelity.parse(GLUE_FIDELITY))
    lrs = parse_lrs(args.lrs)
    search_fidelity = Fidelity.parse(args.search_fidelity)
    if search_fidelity.lr is None:  # every searched configuration trains at the PEFT rate
        search_fidelity = search_fidelity.replace(lr=lrs["mixed"])
    tasks = _named_tasks(args.tasks) if args.tasks else glue_tasks_in(args.glue_dir)
    methods = _named_methods(args.methods or DEFAULT_METHODS)
    searching = not args.no_search
    if searching and args.transfer_from not in tasks:
        raise UserError(f"--transfer-from {args.transfer_from} is not among the tasks ({', '.join(tasks)})")
    if args.search_trials < 2 or args.top < 1 or args.jobs < 1:
        raise UserError("--search-trials must be at least 2, --top and --jobs at least 1")
    from autopeft.cli.search import SAMPLER_NAMES, parse_max_params

    if args.sampler not in SAMPLER_NAMES:  # now, not hours later when the first search starts
        raise UserError(f"unknown --sampler {args.sampler!r}; known: {', '.join(SAMPLER_NAMES)}")
    parse_max_params(args.max_params)
    settings = {
        "model": args.model,
        "fidelity": fidelity.to_dict(),
        "lrs": lrs,
        "search": {
            "trials": args.search_trials,
            "startup": args.search_startup,
            "fidelity": search_fidelity.to_dict(),
            "sampler": args.sampler,
            "surrogate": args.surrogate,
            "max_params": args.max_params,
            "top": args.top,
            "transfer_from": args.transfer_from,
        },
    }
    data = {t: {"name": t, "glue_dir": args.glue_dir} for t in tasks}
    for t in tasks:
        load_task(**data[t])  # every task's data is there before anything is stored
    storage = open_storage(args.storage)
    bench = Bench(storage, _bench_name(args), settings)
    bench.seeds, bench.tasks, bench.methods, bench.out, bench.data = seeds, tasks, methods, args.out, data
    bench.note_machine(args.jobs)
    bench.train(methods, tasks, data, fidelity, args)
    if searching:
        order = [args.transfer_from] + [t for t in tasks if t != args.transfer_from]
        for task in order:
            bench.search(task, args)
            if task == args.transfer_from:
                for k, config in enumerate(bench.chosen(task), start=1):
                    bench.train([config], tasks, data, fidelity, args, row=_row("autopeft-transfer", k))
        for task in tasks:
            for k, config in enumerate(bench.chosen(task), start=1):
                bench.train([config], [task], data, fidelity, args, row=_row("autopeft-task", k))
    bench.write()
    print(f"results: {args.out}")
    print(json.dumps(bench.summary()))
    return 0


def _report_only(args: argparse.Namespace) -> int:
    """The page from the stored bench: its own tasks, manual methods and seeds unless named."""
    from autopeft.study import load_study, open_storage

    storage = open_storage(args.storage)
    name = _bench_name(args)
    load_study(name, storage)  # a missing bench study is an error, not a new empty one
    bench = Bench(storage, name, None)
    tasks, methods, seeds = bench.ran()
    bench.tasks = _named_tasks(args.tasks) if args.tasks else tasks
    bench.methods = _named_methods(args.methods) if args.methods else methods
    bench.seeds = parse_seeds(args.seeds) if args.seeds else seeds
    bench.out = args.out
    bench.data = {t: {"name": t, "glue_dir": args.glue_dir} for t in bench.tasks}
    bench.write()
    print(f"results: {args.out}")
    return 0


def _bench_name(args: argparse.Namespace) -> str:
    return args.name or f"glue-{Path(args.model.rstrip('/')).name}"


def _named_tasks(text: str) -> list[str]:
    from autopeft.tasks.glue import TASKS

    tasks = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise UserError(f"unknown GLUE task {unknown[0]!r}" if unknown else "no GLUE task to run")
    return tasks


def _named_methods(text: str) -> list[str]:
    from autopeft.methods import METHODS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
    return methods


def _row(base: str, k: int) -> str:
    return base if k == 1 else f"{base}#{k}"


class Bench:
    """The bench study: settings, runs by (task, seed, item), searches' costs and chosen configurations."""

    def __init__(self, storage: Any, name: str, settings: dict[str, Any] | None) -> None:
        """settings: what this run is (checked against the stored ones); None: the stored ones, to report."""
        import optuna

        self.name = name
        self.study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
        attrs = self.study.user_attrs
        stored = attrs.get("glue_bench")
        if stored is None and (attrs or self.study.trials):
            raise UserError(f"study {name!r} exists and is not a GLUE bench; use another --name")
        if settings is None:
            if stored is None:
                raise UserError(f"study {name!r} has no GLUE bench results")
            settings = stored
        elif stored is None:
            self.study.set_user_attr("glue_bench", settings)
        elif stored != settings:
            changed = sorted(k for k in settings if stored.get(k) != settings[k])
            raise UserError(
                f"bench study {name!r} was run with other settings ({', '.join(changed)}); use another --name"
            )
        self.settings = settings
        self.storage = storage
        # row -> task -> what it trains there (a method name or a configuration's JSON)
        self.rows: dict[str, dict[str, str]] = dict(self.study.user_attrs.get("rows", {}))
        self.seeds: list[int] = []
        self.tasks: list[str] = []
        self.methods: list[str] = []
        self.out = Path("RESULTS.md")
        self.data: dict[str, dict[str, Any]] = {}  # task -> keyword arguments of `load_task`
        self._floors: dict[str, float] | None = None

    # --- state -------------------------------------------------------------------------------

    @staticmethod
    def run_key(task: str, seed: int, item: str) -> str:
        return f"run:{task}:{seed}:{item}"

    def search_study_name(self, task: str) -> str:
        return f"{self.name}-search-{task}"

    def attrs(self) -> dict[str, Any]:
        return self.study.user_attrs  # read from the storage on every call

    def note_machine(self, jobs: int) -> None:
        import torch

        machines = dict(self.study.user_attrs.get("machines", {}))
        machines[platform.node()] = (
            f"{_cpu_model()}, {os.cpu_count()} CPU threads, {_memory_gib()} GiB, "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}; "
            f"torch {torch.__version__}, {jobs} worker(s)"
        )
        self.study.set_user_attr("machines", machines)

    def ran(self) -> tuple[list[str], list[str], list[int]]:
        """The tasks (in GLUE's order), manual methods and seeds this bench has rows and runs for."""
        from autopeft.methods import METHODS
        from autopeft.tasks.glue import TASKS

        covered = {task for cells in self.rows.values() for task in cells}
        seeds = {int(key.split(":")[2]) for key in self.attrs() if key.startswith("run:")}
        return [t for t in TASKS if t in covered], [r for r in self.rows if r in METHODS], sorted(seeds)

    def chosen(self, task: str) -> list[str]:
        return list(self.study.user_attrs.get(f"chosen:{task}", []))

    # --- work --------------------------------------------------------------------------------

    def train(self, items: list[str], tasks: list[str], data: dict, fidelity: Any, args: argparse.Namespace, row=None):
        """Every (task, seed) of each item that is not stored yet; each result stored when it arrives."""
        from autopeft.engine.workers import Job, run_jobs

        for item in items:
            self._add_row(row or item, tasks, item)
        done = set(self.study.user_attrs)
        rates = {i: self.lr_of(i) for i in items}
        jobs = [
            Job(t, i, s, fidelity=fidelity if fidelity.lr else fidelity.replace(lr=rates[i]))
            for t in tasks
            for i in items
            for s in self.seeds
            if self.run_key(t, s, i) not in done
        ]
        if not jobs:
            return
        print(f"{len(jobs)} run(s) to go: {', '.join(sorted({row or i for i in items}))}", file=sys.stderr, flush=True)
        finished = run_jobs(jobs, self.settings["model"], data, fidelity, args.jobs, args.device)
        for job, result, cpu_seconds in finished:
            label = f"{row or job.item} on {job.task} seed {job.seed}"
            if not result.ok:
                print(f"{label}: failed: {result.reason}", file=sys.stderr, flush=True)
                self.study.set_user_attr(f"failed:{job.task}:{job.seed}:{job.item}", result.reason)
                continue
            self.study.set_user_attr(
                self.run_key(job.task, job.seed, job.item),
                {
                    "score": result.headline,
                    "metric": result.metric_name,
                    "metrics": result.metrics,
                    "params": result.params,
                    "percent": result.percent,
                    "epochs": result.epochs_run,
                    "train_seconds": round(result.train_seconds, 2),
                    "wall_seconds": round(result.wall_seconds, 2),
                    "cpu_seconds": round(cpu_seconds, 2),
                    "lr": result.lr,
                    "host": platform.node(),
                },
            )
            print(f"{label}: {result.metric_name} {result.headline:.4f}", file=sys.stderr, flush=True)
            self.write()

    def lr_of(self, item: str) -> float:
        """The learning rate of a method (by name) or a configuration (JSON) under the bench's `lrs`."""
        from autopeft.engine import family_of
        from autopeft.engine.workers import decode_item

        lrs = self.settings["lrs"]
        return lrs[item] if item in lrs else lrs[family_of(decode_item(item))]

    def _add_row(self, row: str, tasks: list[str], item: str) -> None:
        cells = dict(self.rows.get(row, {}))
        for task in tasks:
            if cells.get(task, item) != item:
                raise UserError(f"row {row} already trains {cells[task]} on {task}, not {item}")
            cells[task] = item
        if cells != self.rows.get(row):
            self.rows[row] = cells
            self.study.set_user_attr("rows", self.rows)

    def search(self, task: str, args: argparse.Namespace) -> None:
        """Run (or continue) the AutoPEFT search on `task`; then fix its `top` Pareto configurations."""
        from autopeft.cli import search as search_cli
        from autopeft.followup import choose_rows
        from autopeft.study import load_study

        s = self.settings["search"]
        study_name = self.search_study_name(task)
        parser = argparse.ArgumentParser()
        search_cli.add_arguments(parser)
        argv = ["--model", self.settings["model"], "--task", task, "--trials", str(s["trials"])]
        argv += ["--sampler", s["sampler"], "--surrogate", s["surrogate"], "--startup", str(s["startup"])]
        argv += ["--fidelity", ",".join(f"{k}={v}" for k, v in s["fidelity"].items() if v is not None)]
        argv += ["--max-params", s["max_params"], "--study", study_name, "--seed", "42", "--jobs", str(args.jobs)]
        for flag, value in (("--glue-dir", args.glue_dir), ("--storage", args.storage), ("--device", args.device)):
            if value:
                argv += [flag, value]
        if _finished_or_zero(study_name, self.storage) < s["trials"]:
            print(f"search on {task}: {study_name}", file=sys.stderr, flush=True)
            search_cli.run(parser.parse_args(argv))
        study = load_study(study_name, self.storage)
        if f"chosen:{task}" not in self.study.user_attrs:
            rows = choose_rows(study, s["top"], None)
            best_first = sorted(rows, key=lambda r: (-r.metric, r.params))
            self.study.set_user_attr(f"chosen:{task}", [r.config.to_json() for r in best_first])

    # --- the page ----------------------------------------------------------------------------

    def results(self) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
        """row -> task -> seed -> stored run (the row's first item with a result on that task)."""
        attrs = self.attrs()
        rows: dict[str, dict[str, str]] = attrs.get("rows", {})
        table: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
        names = [m for m in self.methods if m in rows] + sorted(r for r in rows if r.startswith("autopeft"))
        for name in names:
            by_task: dict[str, dict[int, dict[str, Any]]] = {}
            for task, item in rows[name].items():
                keys = {s: self.run_key(task, s, item) for s in self.seeds}
                runs = {s: attrs[key] for s, key in keys.items() if key in attrs}
                if task in self.tasks and runs:
                    by_task[task] = runs
            table[name] = by_task
        return table

    def summary(self) -> dict[str, Any]:
        from autopeft.glue_results import build_rows

        rows = build_rows(self.results(), self.tasks)
        return {
            "bench": self.name,
            "tasks": self.tasks,
            "average": {r.name: r.average for r in rows},
            "percent": {r.name: r.percent for r in rows},
        }

    def write(self) -> None:
        from autopeft.glue_results import Page, build_rows, write_page
        from autopeft.tasks.glue import TASKS
        from autopeft.tasks.metrics import headline_name

        attrs = self.attrs()
        runs = [v for k, v in attrs.items() if k.startswith("run:")]
        results = self.results()
        lrs = {}
        for name, by_task in results.items():
            first = next((r for seeds in by_task.values() for r in seeds.values()), None)
            if first is not None:
                lrs[name] = first["lr"]
        search = self.settings["search"]
        search_costs = self.search_costs()
        searching = any(k.startswith("chosen:") for k in attrs) or bool(search_costs)
        page = Page(
            model=self.settings["model"],
            tasks=tuple(self.tasks),
            seeds=tuple(self.seeds),
            metric_names={t: headline_name(TASKS[t].metric) for t in self.tasks},
            fidelity=self.settings["fidelity"],
            search=search,
            rows=tuple(build_rows(results, self.tasks)),
            cells_expected=(len(self.methods) + (2 * search["top"] if searching else 0)) * len(self.tasks),
            search_costs=search_costs,
            chosen={t: attrs[f"chosen:{t}"] for t in self.tasks if f"chosen:{t}" in attrs},
            machines=attrs.get("machines", {}),
            final_cpu_seconds=sum(r.get("cpu_seconds", 0.0) for r in runs),
            final_wall_seconds=sum(r.get("wall_seconds", 0.0) for r in runs),
            lrs=lrs,
            notes=notes.read_text(encoding="utf-8") if (notes := self.out.with_suffix(".notes.md")).is_file() else None,
            floors=self.floors(),
        )
        write_page(page, self.out)

    def floors(self) -> dict[str, float]:
        """task -> dev score of a constant prediction (the majority class); tasks without data here are left out."""
        if self._floors is None:
            from autopeft.tasks import load_task

            self._floors = {}
            for task in self.tasks:
                try:
                    data = load_task(**self.data.get(task, {"name": task}))
                except (UserError, OSError):
                    continue  # a report written where the GLUE files are not: no floor for this task
                self._floors[task] = data.constant_prediction_scores()[data.metric_name]
        return self._floors

    def search_costs(self) -> dict[str, dict[str, Any]]:
        """task -> its search's study, trials, CPU and wall seconds, and its signal: the held-out floor (a
        constant prediction's score) and the best trial's score (the tasks searched so far)."""
        from autopeft.results import completed_rows, search_cost
        from autopeft.search import finished_count

        costs = {}
        for task in self.tasks:
            study = _study_or_none(self.search_study_name(task), self.storage)
            if study is not None:
                best = max((r.metric for r in completed_rows(study)), default=None)
                costs[task] = {
                    "study": study.study_name,
                    "trials": finished_count(study),
                    **search_cost(study),
                    "floor": study.user_attrs.get("constant_prediction"),
                    "best": best,
                }
        return costs


def _study_or_none(study_name: str, storage: Any) -> Any:
    """The study, or None where it was never created (a search not started yet)."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None


def _finished_or_zero(study_name: str, storage: Any) -> int:
    from autopeft.search import finished_count

    study = _study_or_none(study_name, storage)
    return 0 if study is None else finished_count(study)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> int:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        return 0
