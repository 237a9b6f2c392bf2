"""Every bad input we know of, run through `autopeft` in-process: each must end with exit code 2 and
one line on stderr before any work, and leave the studies, and every other file, as they were.

    .venv/bin/python scripts/reliability.py            # run them all, write docs/RELIABILITY.md
    .venv/bin/python scripts/reliability.py --check    # run them all, fail if one misbehaves or the page is stale

The cases run in a scratch folder holding `s.db` (an AutoPEFT study `made` without trials, and
`plain`, an Optuna study autopeft did not make), a file `afile` and a non-empty folder `full`.
`tests/test_reliability.py` runs them too and checks the committed page.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "RELIABILITY.md"
GLUE_DIR = (ROOT.parent / "shared" / "data" / "glue").resolve()  # unless $AUTOPEFT_GLUE_DIR says otherwise
DB = "sqlite:///s.db"
LONG = "a" * 5000

# (command line after `autopeft`); each must be refused with exit code 2 and one line.
SEARCH = f"search --model tiny-bert --task rte --trials 1 --storage {DB}"
CFG = "train --model tiny-bert --task rte --config"
CASES: tuple[str, ...] = (
    # search: study names
    f"{SEARCH} --study ../../escape",
    f"{SEARCH} --study /tmp/escape",
    f"{SEARCH} --study ''",
    f"{SEARCH} --study {LONG}",
    f"{SEARCH} --study 'a b'",
    f"{SEARCH} --study .hidden",
    f"{SEARCH} --study a..b",
    # search: devices, budgets, sampler settings
    f"{SEARCH} --device quantum",
    f"{SEARCH} --device ''",
    f"{SEARCH} --device xla",
    f"{SEARCH} --device cpu:x",
    f"{SEARCH} --startup -1",
    f"{SEARCH} --max-params 150%",
    f"{SEARCH} --max-params 0",
    f"{SEARCH} --max-params -5",
    f"{SEARCH} --max-params abc",
    f"{SEARCH} --max-params 1e400",
    f"{SEARCH} --max-params 1",
    f"{SEARCH.replace('--trials 1', '--trials 0')}",
    f"{SEARCH.replace('--trials 1', '--trials -3')}",
    f"{SEARCH} --jobs 0",
    f"{SEARCH} --seed -1",
    f"{SEARCH} --sampler nope",
    f"{SEARCH} --surrogate nope",
    f"{SEARCH} --space nope",
    f"{SEARCH} --ref-point 1",
    f"{SEARCH} --ref-point a,b",
    f"{SEARCH} --ref-point 0.5,-1",
    f"{SEARCH} --ref-point 0.5,100 --sampler random",
    f"{SEARCH} --copula --sampler tpe",
    f"{SEARCH} --baselines nope",
    f"{SEARCH} --baselines ,",
    # search: fidelity
    f"{SEARCH} --fidelity epochs=0",
    f"{SEARCH} --fidelity bogus=1",
    f"{SEARCH} --fidelity epochs",
    f"{SEARCH} --fidelity pooling=max",
    f"{SEARCH} --fidelity head_start=mean",
    f"{SEARCH} --fidelity module_rates=fast",
    f"{SEARCH} --fidelity prefix_start=zero",
    f"{SEARCH} --fidelity interim_eval_fraction=1.5",
    f"{SEARCH} --fidelity max_train_samples=10,train_fraction=0.5",
    f"{SEARCH} --fidelity lr=-1",
    f"{SEARCH} --fidelity heldout_fraction=0.9",
    f"{SEARCH} --fidelity epochs=1.5",
    f"{SEARCH} --fidelity epochs=1,epochs=2",
    f"{SEARCH} --epochs 0",
    f"{SEARCH} --batch-size 0",
    f"{SEARCH} --lr 0",
    f"{SEARCH} --max-length -1",
    # search: data, model, storage, output folders
    f"search --model tiny-bert --task nope --trials 1 --storage {DB}",
    f"search --model tiny-bert --trials 1 --storage {DB}",
    f"search --model tiny-bert --train-file missing.csv --trials 1 --storage {DB}",
    f"{SEARCH} --glue-dir no-such-folder",
    f"{SEARCH} --text-columns ,",
    f"search --model ./no-such-model --task rte --trials 1 --storage {DB}",
    f"{SEARCH.replace(DB, 'notaurl')}",
    f"{SEARCH.replace(DB, 'sqlite:///afile/x.db')}",
    f"{SEARCH.replace(DB, 'sqlite:///full')}",
    f"{SEARCH} --report afile",
    f"{SEARCH} --artifacts afile",
    # search: continuing a study with another identity, or a study autopeft did not make
    f"search --model tiny-roberta --task rte --trials 1 --storage {DB} --study made",
    f"{SEARCH} --study made --sampler tpe",
    f"{SEARCH} --study made --space extended",
    f"{SEARCH} --study made --fidelity epochs=2",
    f"search --model tiny-bert --task mrpc --trials 1 --storage {DB} --study made",
    f"{SEARCH} --study plain",
    # worker
    f"worker --storage {DB} --study missing",
    f"worker --storage {DB} --study plain",
    f"worker --storage {DB} --study ../x",
    f"worker --storage {DB} --study ''",
    "worker --storage sqlite:///missing.db --study made",
    f"worker --storage {DB} --study made --device quantum",
    f"worker --storage {DB} --study made --jobs 0",
    f"worker --storage {DB} --study made --report afile",
    f"worker --storage {DB} --study made --artifacts afile",
    "worker --storage notaurl --study made",
    # report
    f"report --storage {DB} --study missing",
    f"report --storage {DB} --study plain",
    f"report --storage {DB} --study ../../escape",
    f"report --storage {DB} --study ''",
    f"report --storage {DB} --study {LONG}",
    "report --storage sqlite:///typo/s.db --study made",
    "report --storage sqlite:///missing.db --study made",
    f"report --storage {DB} --study made --out afile",
    f"report --storage {DB} --study made --out afile/sub",
    "report --storage notaurl --study made",
    # retrain
    f"retrain --storage {DB} --study made --top 0",
    f"retrain --storage {DB} --study made --top -1",
    f"retrain --storage {DB} --study made --trials x",
    f"retrain --storage {DB} --study made --trials ''",
    f"retrain --storage {DB} --study made --trials -1",
    f"retrain --storage {DB} --study made --trials 1,1",
    f"retrain --storage {DB} --study made --top 1 --trials 1",
    f"retrain --storage {DB} --study made --seeds ''",
    f"retrain --storage {DB} --study made --seeds a",
    f"retrain --storage {DB} --study made --seeds 1,1",
    f"retrain --storage {DB} --study made --seeds -1",
    f"retrain --storage {DB} --study made --fidelity bogus=1",
    f"retrain --storage {DB} --study made --fidelity ,",
    f"retrain --storage {DB} --study made --epochs 0",
    f"retrain --storage {DB} --study made --patience 0",
    f"retrain --storage {DB} --study made --max-train-samples 0",
    f"retrain --storage {DB} --study made --device quantum",
    f"retrain --storage {DB} --study made --trials 5",
    f"retrain --storage {DB} --study made",
    f"retrain --storage {DB} --study plain",
    f"retrain --storage {DB} --study missing",
    f"retrain --storage {DB} --study ../x",
    "retrain --storage sqlite:///missing.db --study made",
    # transfer
    f"transfer --storage {DB} --study made --task nope",
    f"transfer --storage {DB} --study made",
    f"transfer --storage {DB} --study made --task mrpc",
    f"transfer --storage {DB} --study plain --task mrpc",
    f"transfer --storage {DB} --study missing --task mrpc",
    f"transfer --storage {DB} --study ../x --task mrpc",
    f"transfer --storage {DB} --study made --task mrpc --top 0",
    f"transfer --storage {DB} --study made --task mrpc --seeds ''",
    f"transfer --storage {DB} --study made --task mrpc --fidelity pooling=max",
    f"transfer --storage {DB} --study made --train-file missing.csv",
    "transfer --storage sqlite:///missing.db --study made --task mrpc",
    f"transfer --storage {DB} --study made --task rte",
    # export
    f"export --storage {DB} --study made --trial 0 --out out",
    f"export --storage {DB} --study made --trial -1 --out out",
    f"export --storage {DB} --study plain --trial 0 --out out",
    f"export --storage {DB} --study missing --trial 0 --out out",
    f"export --storage {DB} --study ../x --trial 0 --out out",
    f"export --storage {DB} --study made --trial 0 --out afile",
    f"export --storage {DB} --study made --trial 0 --out full",
    f"export --storage {DB} --study made --trial 0 --out out --format nope",
    "export --storage sqlite:///missing.db --study made --trial 0 --out out",
    # train
    f"{CFG} '[1,2,3]'",
    f"{CFG} '" + '{"serial": 64, "layers": [0]}' + "'",
    f"{CFG} '" + '{"serial": 8}' + "'",
    f"{CFG} '" + '{"bogus": 1}' + "'",
    f"{CFG} '" + '{"serial": 8, "layers": [' + "'",
    f"{CFG} missing.json",
    f"{CFG} full",
    f"{CFG} '" + '{"serial": 8, "layers": [9]}' + "'",
    f"{CFG} '" + "{}" + "'",
    f"{CFG} '" + '{"serial": -1, "layers": [0]}' + "'",
    f"{CFG} '" + '{"serial": 8.5, "layers": [0]}' + "'",
    f"{CFG} '" + '{"serial": "8", "layers": [0]}' + "'",
    f"{CFG} '" + '{"serial": 8, "layers": "0"}' + "'",
    f"{CFG} 42",
    "train --model tiny-bert --task rte --method nope",
    "train --model tiny-bert --task rte --method pfeiffer --seeds ''",
    "train --model tiny-bert --task rte --method pfeiffer --seeds a,b",
    "train --model tiny-bert --task rte --method pfeiffer --seeds 1,1",
    "train --model tiny-bert --task rte --method pfeiffer --out afile",
    "train --model tiny-bert --task rte --method pfeiffer --out afile/sub",
    "train --model tiny-bert --task rte --method pfeiffer --device quantum",
    "train --model tiny-bert --task rte --method pfeiffer --mode nope",
    "train --model tiny-bert --task nope --method pfeiffer",
    "train --model tiny-bert --task rte --method pfeiffer --fidelity epochs=0",
    "train --model tiny-bert --method pfeiffer",
    "train --model ./no-such-model --task rte --method pfeiffer",
    # space
    "space --model tiny-bert --sample 0",
    "space --model tiny-bert --space nope",
    "space --model tiny-bert --config '[1]'",
    "space --model tiny-bert --config '" + '{"serial": 7, "layers": [0]}' + "'",
    "space --model tiny-bert --config '" + '{"serial": 8, "layers": [99]}' + "'",
    "space --model tiny-bert --config '" + '{"lora": 2, "layers": [0]}' + "'",
    "space --model tiny-bert --num-labels 0",
    "space --model ./no-such-model",
    # bench glue
    "bench glue --model tiny-bert --tasks rte --name ../escape",
    "bench glue --model tiny-bert --tasks rte --name ''",
    "bench glue --model tiny-bert --tasks nope",
    "bench glue --model tiny-bert --tasks ''",
    "bench glue --model tiny-bert --tasks rte --methods nope",
    "bench glue --model tiny-bert --tasks rte --seeds ''",
    "bench glue --model tiny-bert --tasks rte --lrs bogus=1",
    "bench glue --model tiny-bert --tasks rte --lrs adapter=x",
    "bench glue --model tiny-bert --tasks rte --lrs adapter=-1",
    "bench glue --model tiny-bert --tasks rte --search-trials 1",
    "bench glue --model tiny-bert --tasks rte --top 0",
    "bench glue --model tiny-bert --tasks rte --jobs 0",
    "bench glue --model tiny-bert --tasks rte --sampler nope",
    "bench glue --model tiny-bert --tasks rte --max-params 150%",
    "bench glue --model tiny-bert --tasks rte --search-startup -1",
    "bench glue --model tiny-bert --tasks rte --transfer-from cola",
    "bench glue --model tiny-bert --tasks rte --fidelity epochs=0",
    "bench glue --model tiny-bert --tasks rte --rate-grid 0.5,2",
    "bench glue --model tiny-bert --tasks rte --rate-grid 1,-1",
    "bench glue --model tiny-bert --tasks rte --rate-grid fast",
    "bench glue --model tiny-bert --tasks rte --transfer-from auto",
    "bench glue --model tiny-bert --tasks rte --search-fidelity evals_per_epoch=0",
    "bench early-stop --model tiny-bert --tasks rte --fidelity auto --epochs 2",
    "bench early-stop --model tiny-bert --tasks rte --fidelity epochs=1,evals_per_epoch=1",
    "train --model tiny-bert --task rte --method pfeiffer --fidelity evals_per_epoch=0",
    f"bench glue --model tiny-bert --report-only --name missing --storage {DB}",
    "bench glue --model tiny-bert --report-only --storage sqlite:///missing.db",
    # calibrate
    f"calibrate --model tiny-bert --task nope --storage {DB}",
    f"calibrate --model ./missing-model --task rte --storage {DB}",
    f"calibrate --model tiny-bert --task rte --max-minutes 0 --storage {DB}",
    f"calibrate --model tiny-bert --task rte --max-minutes nan --storage {DB}",
    f"calibrate --model tiny-bert --task rte --max-minutes soon --storage {DB}",
    f"calibrate --model tiny-bert --task rte --ladder '' --storage {DB}",
    f"calibrate --model tiny-bert --task rte --ladder 10x --storage {DB}",
    f"calibrate --model tiny-bert --task rte --ladder 64x1,32x1 --storage {DB}",
    f"calibrate --model tiny-bert --task rte --ladder 64x1,32x2 --storage {DB}",
    f"calibrate --model tiny-bert --task rte --ladder 100000x9 --max-minutes 0.01 --storage {DB}",
    f"calibrate --model tiny-bert --task rte --configs 1 --storage {DB}",
    f"calibrate --model tiny-bert --task rte --jobs 0 --storage {DB}",
    f"calibrate --model tiny-bert --task rte --study plain --storage {DB}",
    f"calibrate --model tiny-bert --task rte --study made --storage {DB}",
    # results files that could not be written after the work: refused before it
    "bench glue --model tiny-bert --tasks rte --no-search --out full",
    "bench glue --model tiny-bert --tasks rte --no-search --out afile/RESULTS.md",
    f"bench glue --model tiny-bert --report-only --storage {DB} --out afile/RESULTS.md",
    "bench modules --model tiny-bert --tasks rte --out full",
    "bench modules --model tiny-bert --tasks rte --out afile/runs.csv",
    "bench early-stop --model tiny-bert --tasks rte --plot afile/early-stop.png",
    # bench engine
    "bench engine --model tiny-bert --task nope",
    "bench engine --model tiny-bert --task rte --method nope",
    "bench engine --model tiny-bert --task rte --seeds ''",
    "bench engine --model tiny-bert --task rte --train-samples 0",
    "bench engine --model tiny-bert --task rte --epochs 0",
    "bench engine --model tiny-bert --task rte --config '[1]'",
    # bench optimizers
    "bench optimizers --problem synthetic-12 --trials 0",
    "bench optimizers --problem synthetic-12 --seeds 0",
    "bench optimizers --problem synthetic-12 --samplers nope",
    "bench optimizers --problem synthetic-12 --samplers ,",
    "bench optimizers --problem synthetic-12 --time-at 1",
    "bench optimizers --problem synthetic-12 --jobs 0",
    "bench optimizers --problem pool:missing.csv",
    "bench optimizers --problem synthetic-12 --out afile",
    "bench optimizers --problem synthetic-12 --floor 0.5",
    "bench optimizers --problem pool:missing.csv --floor nan",
    # bench make-pool
    "bench make-pool --model tiny-bert --task rte --configs 0 --out pool.csv",
    "bench make-pool --model tiny-bert --task rte --configs 2 --out afile/pool.csv",
    "bench make-pool --model tiny-bert --task nope --configs 2 --out pool.csv",
    "bench make-pool --model tiny-bert --task rte --configs 2 --out full",
)


@dataclass(frozen=True)
class Outcome:
    command: str
    code: int
    stderr: str
    stdout: str
    changed: tuple[str, ...]  # files created, removed or changed

    @property
    def message(self) -> str:
        return self.stderr.strip()

    def problems(self) -> list[str]:
        out = []
        if self.code != 2:
            out.append(f"exit code {self.code}")
        lines = self.stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("autopeft "):
            out.append(f"stderr is not one line: {self.stderr[-300:]!r}")
        if self.changed:
            out.append(f"changed files: {', '.join(self.changed)}")
        return out


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def make_scratch(folder: Path) -> None:
    """The studies and files the cases run against."""
    import optuna

    from autopeft import models
    from autopeft.engine.fidelity import Fidelity
    from autopeft.search.record import SamplerSettings, StudyRecord, TaskArgs
    from autopeft.search.request import SEARCH_FIDELITY
    from autopeft.search.storage import create_or_continue, open_storage

    storage = open_storage(f"sqlite:///{folder / 's.db'}")
    dims = models.dims_of("tiny-bert")
    record = StudyRecord(
        model="tiny-bert",
        task="rte",
        space="paper",
        fidelity=Fidelity.parse(SEARCH_FIDELITY),
        num_labels=2,
        metric="accuracy",
        sampler=SamplerSettings(),
        trials=1,
        max_params=None,
        seed=42,
        data=TaskArgs(name="rte"),
        params_ref=1000,
        params_min=10,
        backbone_params=dims.backbone_params,
        constant_prediction=0.5,
    )
    create_or_continue("made", storage, record)
    optuna.create_study(study_name="plain", storage=storage)
    storage.engine.dispose()
    (folder / "afile").write_text("a file\n")
    (folder / "full").mkdir()
    (folder / "full" / "keep.txt").write_text("keep\n")


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A scratch folder with the studies, as the working directory (and the default storage)."""
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="autopeft-reliability-") as tmp:
        folder = Path(tmp)
        make_scratch(folder)
        os.chdir(folder)
        os.environ["AUTOPEFT_STORAGE"] = DB
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("AUTOPEFT_GLUE_DIR", str(GLUE_DIR))
        try:
            yield folder
        finally:
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)


class CaseTimeout(Exception):
    """A case still running after `TIMEOUT` seconds: it started work instead of refusing."""


TIMEOUT = 60


def _alarm(signum: int, frame: object) -> None:
    raise CaseTimeout(f"still running after {TIMEOUT} s")


def run_case(command: str, folder: Path) -> Outcome:
    """`autopeft COMMAND` in-process in `folder`: exit code, output, and the files it changed."""
    from autopeft.cli import main

    before = _snapshot(folder)
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(shlex.split(command))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except (Exception, CaseTimeout) as exc:  # a traceback: the case fails, and says with what
            code = 1
            print(f"traceback: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    after = _snapshot(folder)
    changed = tuple(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))
    text = err.getvalue().replace(str(folder), "<scratch>")
    return Outcome(command, code, text, out.getvalue(), changed)


def run_all(cases: tuple[str, ...] = CASES, verbose: bool = False) -> list[Outcome]:
    outcomes = []
    with scratch() as folder:
        for command in cases:
            outcomes.append(run_case(command, folder))
            if verbose:
                print(f"{outcomes[-1].code} autopeft {command[:100]}", file=sys.stderr, flush=True)
    return outcomes


def _cell(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[:limit] + "..."
    return text.replace("|", "\\|").replace("\n", " ")


def render(outcomes: list[Outcome]) -> str:
    lines = [
        "# Reliability: bad inputs and what autopeft says",
        "",
        "Generated by `scripts/reliability.py` (do not edit by hand; `tests/test_reliability.py` checks it is",
        "current). Each command runs in-process in a scratch folder holding `s.db` (an AutoPEFT study `made`",
        "without trials and `plain`, an Optuna study autopeft did not make), a file `afile` and a non-empty",
        f"folder `full`. All {len(outcomes)} end with exit code 2 and one line on stderr, before any work,",
        "and leave every file of the folder (the studies too) as it was; nothing is created.",
        "",
        "| # | command (`autopeft ...`) | exit | message |",
        "|---|---|---|---|",
    ]
    for i, o in enumerate(outcomes, 1):
        command = o.command.replace(LONG, "a...a (5,000 characters)")
        lines.append(f"| {i} | `{_cell(command)}` | {o.code} | {_cell(o.message)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a case misbehaves or the page is stale")
    args = parser.parse_args(argv)
    outcomes = run_all(verbose=True)
    bad = [(o, o.problems()) for o in outcomes if o.problems()]
    for o, problems in bad:
        print(f"FAIL autopeft {o.command[:120]}: {'; '.join(problems)}", file=sys.stderr)
    page = render(outcomes)
    if args.check:
        stale = not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != page
        if stale:
            print(f"{PAGE.relative_to(ROOT)} is not current: run scripts/reliability.py", file=sys.stderr)
        return 1 if bad or stale else 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"{len(outcomes)} cases, {len(bad)} misbehave; wrote {PAGE.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
