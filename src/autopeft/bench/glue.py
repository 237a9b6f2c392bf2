"""The paper's GLUE comparison at this machine's scale, resumable, into RESULTS.md.

Rows: the manual methods (full fine-tuning and the PEFT baselines), AutoPEFT transferred (the best
Pareto configurations of a search on one task, trained on every task) and AutoPEFT per task (a
search on each task). Every row trains with the same final fidelity (epochs, training subset,
batch, length; the learning rate is each method family's default) on every task and seed, and is
scored on the task's dev set; searches score on a held-out slice of train, never on dev.

State lives in one Optuna study (`GlueBench.name`, see `glue_study.Bench`): each finished run is a
study attribute written the moment it ends, searches are ordinary AutoPEFT search studies, so a
killed run continues where it was when it is run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.bench.glue_table import AUTOPEFT_TASK, AUTOPEFT_TRANSFER
from autopeft.errors import UserError
from autopeft.names import SAMPLERS
from autopeft.search.record import check_study_name

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity

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
DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class SearchPlan:
    """How the bench searches each task (stored with the bench; changing it needs another bench name)."""

    trials: int = 20
    startup: int = 8
    fidelity: str = GLUE_SEARCH_FIDELITY
    sampler: str = "autopeft"
    surrogate: str = "saas"
    max_params: str = "1%"  # a count or a percentage, as `search --max-params`
    top: int = 1  # Pareto configurations per search trained at the final budget
    transfer_from: str = "rte"  # or "auto": the searched task whose calibration found the strongest signal
    early_stop: bool = False
    random: bool = False  # also a random search of the same trials on each task (its hypervolume beside ours)

    def __post_init__(self) -> None:
        from autopeft.search.request import parse_max_params

        if self.trials < 2 or self.top < 1:
            raise UserError("--search-trials must be at least 2, --top and --jobs at least 1")
        if self.startup < 0:
            raise UserError(f"--search-startup must be at least 0, got {self.startup}")
        if self.sampler not in SAMPLERS:  # now, not hours later when the first search starts
            raise UserError(f"unknown --sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")
        parse_max_params(self.max_params)
        if self.transfer_from == "auto" and self.fidelity != "auto":
            raise UserError("--transfer-from auto picks the strongest calibrated signal: use --search-fidelity auto")

    @property
    def calibrated(self) -> bool:
        return self.fidelity == "auto"


@dataclass(frozen=True)
class GlueBench:
    """One GLUE bench: which rows, tasks and seeds, at which budget, stored where."""

    model: str
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    fidelity: Fidelity
    lrs: dict[str, float]
    search: SearchPlan = SearchPlan()
    searching: bool = True  # False: manual rows only
    rate_grid: tuple[float, ...] | None = None  # factors of each row's family rate, chosen on held-out train
    probe_storage: str | None = None  # the calibration probes of `--search-fidelity auto` (default: storage)
    name: str | None = None  # the bench study (default glue-<model>)
    storage: str | None = None
    glue_dir: str | None = None
    jobs: int = 1
    device: str | None = None
    out: Path = Path("RESULTS.md")

    def __post_init__(self) -> None:
        from autopeft.paths import check_output_file

        check_study_name(self.study_name, "--name")
        check_output_file(self.out)  # the page and its plots, written after hours of training
        if self.jobs < 1:
            raise UserError("--search-trials must be at least 2, --top and --jobs at least 1")
        if self.searching and self.search.transfer_from not in (*self.tasks, "auto"):
            raise UserError(
                f"--transfer-from {self.search.transfer_from} is not among the tasks ({', '.join(self.tasks)})"
            )

    @property
    def study_name(self) -> str:
        return bench_name(self.name, self.model)


def bench_name(name: str | None, model: str) -> str:
    """The bench study: `name` (checked, as `--name`), or glue-<model folder name>."""
    return check_study_name(name if name is not None else f"glue-{Path(model.rstrip('/')).name}", "--name")


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


def named_tasks(text: str) -> list[str]:
    from autopeft.tasks.glue import TASKS

    tasks = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise UserError(f"unknown GLUE task {unknown[0]!r}" if unknown else "no GLUE task to run")
    return tasks


def named_methods(text: str) -> list[str]:
    from autopeft.methods import METHODS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
    return methods


def run_glue_bench(bench_request: GlueBench) -> dict[str, Any]:
    """Train every row not stored yet, run the searches, write the page; the bench's summary."""
    from autopeft.bench.glue_study import Bench
    from autopeft.search.request import RunOptions
    from autopeft.search.storage import open_storage
    from autopeft.tasks import load_task

    r = bench_request
    plan = r.search
    settings = {"model": r.model, "fidelity": r.fidelity.to_dict(), "lrs": r.lrs, "search": _search_settings(r)}
    if r.rate_grid is not None:  # keys of the second edition only where set, so a first-edition bench continues
        settings["rate_grid"] = list(r.rate_grid)
    data = {t: {"name": t, "glue_dir": r.glue_dir} for t in r.tasks}
    for t in r.tasks:
        load_task(**data[t])  # every task's data is there before anything is stored
    storage = open_storage(r.storage)
    bench = Bench(storage, r.study_name, settings)
    bench.seeds, bench.tasks, bench.methods, bench.out, bench.data = (
        list(r.seeds),
        list(r.tasks),
        list(r.methods),
        r.out,
        data,
    )
    bench.probe_storage = r.probe_storage or r.storage
    bench.note_machine(r.jobs)
    bench.train(list(r.methods), list(r.tasks), r.fidelity, r.jobs, r.device)
    if r.searching:
        options = RunOptions(storage=r.storage, device=r.device, jobs=r.jobs)
        if plan.transfer_from != "auto":  # the first edition's order: transferred rows as soon as they can run
            order = [plan.transfer_from] + [t for t in r.tasks if t != plan.transfer_from]
            for task in order:
                bench.search(task, options)
                if task == plan.transfer_from:
                    _transferred_rows(bench, r, task, AUTOPEFT_TRANSFER, bench.transferred_count())
        else:  # every search first: the source is the one with the strongest calibrated signal
            for task in r.tasks:
                bench.search(task, options)
            source = bench.transfer_source()
            if source is not None:
                _transferred_rows(bench, r, source, AUTOPEFT_TRANSFER, bench.transferred_count())
            if source not in (None, "rte") and bench.chosen("rte"):  # the paper's source, kept where it has signal
                _transferred_rows(bench, r, "rte", f"{AUTOPEFT_TRANSFER}-rte", 1)
        for task in r.tasks:
            bench.rank_chosen(task, r.fidelity, r.jobs, r.device)
            for k, config in enumerate(bench.chosen(task), start=1):
                bench.train([config], [task], r.fidelity, r.jobs, r.device, row=_row(AUTOPEFT_TASK, k))
    bench.write()
    return bench.summary()


def _search_settings(r: GlueBench) -> dict[str, Any]:
    """The searches' settings as the bench stores them (second-edition keys only where set)."""
    from autopeft.engine import Fidelity

    plan = r.search
    if plan.calibrated:
        fidelity: Any = "auto"
    else:
        search_fidelity = Fidelity.parse(plan.fidelity)
        if search_fidelity.lr is None:  # every searched configuration trains at the PEFT rate
            search_fidelity = search_fidelity.replace(lr=r.lrs["mixed"])
        fidelity = search_fidelity.to_dict()
    settings = {
        "trials": plan.trials,
        "startup": plan.startup,
        "fidelity": fidelity,
        "sampler": plan.sampler,
        "surrogate": plan.surrogate,
        "max_params": plan.max_params,
        "top": plan.top,
        "transfer_from": plan.transfer_from,
    }
    if plan.early_stop:
        settings["early_stop"] = True
    if plan.random:
        settings["random"] = True
    return settings


def _transferred_rows(bench: Any, r: GlueBench, source: str, row: str, top: int) -> None:
    """The best `top` configurations of `source`'s search, each trained on every task."""
    bench.rank_chosen(source, r.fidelity, r.jobs, r.device)
    for k, config in enumerate(bench.chosen(source)[:top], start=1):
        bench.train([config], list(r.tasks), r.fidelity, r.jobs, r.device, row=_row(row, k))


def write_page_only(
    name: str | None,
    model: str,
    storage: str | None,
    out: Path,
    glue_dir: str | None = None,
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
) -> None:
    """The page from the stored bench: its own tasks, manual methods and seeds unless named."""
    from autopeft.bench.glue_study import Bench
    from autopeft.paths import check_output_file
    from autopeft.search.storage import load_study, open_storage

    check_output_file(out)
    study_name = bench_name(name, model)
    opened = open_storage(storage, create=False)
    load_study(study_name, opened)  # a missing bench study is an error, not a new empty one
    bench = Bench(opened, study_name, None)
    ran_tasks, ran_methods, ran_seeds = bench.ran()
    bench.tasks = tasks or ran_tasks
    bench.methods = methods or ran_methods
    bench.seeds = seeds or ran_seeds
    bench.out = out
    bench.data = {t: {"name": t, "glue_dir": glue_dir} for t in bench.tasks}
    bench.write()


def _row(base: str, k: int) -> str:
    return base if k == 1 else f"{base}#{k}"
