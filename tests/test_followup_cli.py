"""After a search: retrain, export (reloaded with adapters' own loader) and transfer, through the CLI;
and optuna-dashboard rendering the study in headless Chromium."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from test_search_cli import FAST, _env, autopeft

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished 4-trial random search on tiny-bert/RTE with its trained adapters saved."""
    folder = tmp_path_factory.mktemp("study")
    url = f"sqlite:///{folder / 's.db'}"
    args = ["search", *FAST, "--trials", "4", "--sampler", "random", "--storage", url, "--study", "t"]
    result = autopeft(*args, "--artifacts", str(folder / "artifacts"), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, url


def _pareto(url: str) -> list[dict]:
    import optuna

    from autopeft.search.results import completed_rows, pareto_rows

    study = optuna.load_study(study_name="t", storage=url)
    return [{"number": r.number, "metric": r.metric} for r in pareto_rows(completed_rows(study))]


def test_export_reloads_with_identical_predictions(searched, tmp_path):
    from autopeft.engine import load_predictions

    folder, url = searched
    number = _pareto(url)[0]["number"]
    out = tmp_path / "exported"
    args = [
        "export",
        "--storage",
        url,
        "--study",
        "t",
        "--trial",
        str(number),
        "--artifacts",
        str(folder / "artifacts"),
    ]
    result = autopeft(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["source"] == "search" and (out / "config.json").is_file() and (out / "metrics.json").is_file()

    # a fresh backbone, adapters' own load_adapter / load_head, then our FFN extension
    from adapters.composition import Stack

    from autopeft import models
    from autopeft.engine import Engine
    from autopeft.peft.ffn_branch import enable_ffn_branches
    from autopeft.tasks import load_task

    setup = json.loads((out / "setup.json").read_text())
    model = models.load_adapter_model(models.resolve("tiny-bert"))
    names = [model.load_adapter(str(out / "adapters" / name), use_safetensors=True) for name in setup["adapters"]]
    enable_ffn_branches(model)
    model.load_head(str(out / "adapters" / "task"), use_safetensors=True)
    model.set_active_adapters(Stack(*names))
    model.active_head = "task"
    model.eval()
    split, rows, saved = load_predictions(out)
    engine = Engine("tiny-bert", load_task("rte"), device="cpu", progress=False)
    from autopeft.tasks import View

    logits = engine.logits(View(split, np.asarray(rows)), model=model)
    assert np.allclose(logits, saved, atol=1e-5)


def test_export_refuses_bad_trials(searched, tmp_path):
    _, url = searched
    bad = autopeft("export", "--storage", url, "--study", "t", "--trial", "99", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "trial 99" in bad.stderr


def test_export_refuses_before_any_work(searched, tmp_path):
    folder, url = searched
    number = str(_pareto(url)[0]["number"])
    base = ["export", "--storage", url, "--study", "t", "--trial", number]
    # the trial's folder is outside the artifact root named (the default, studies/artifacts here)
    outside = autopeft(*base, "--out", str(tmp_path / "a"), cwd=tmp_path)
    assert outside.returncode == 2 and "outside the study's artifact folder" in outside.stderr
    assert not (tmp_path / "a").exists() and len(outside.stderr.strip().splitlines()) == 1
    # an --out that is a file
    (tmp_path / "file").write_text("x")
    as_file = autopeft(*base, "--artifacts", str(folder / "artifacts"), "--out", str(tmp_path / "file"))
    assert as_file.returncode == 2 and "is a file" in as_file.stderr and (tmp_path / "file").read_text() == "x"
    # peft cannot express bottleneck adapters or prefixes: one line, nothing written
    peft = autopeft(*base, "--artifacts", str(folder / "artifacts"), "--format", "peft", "--out", str(tmp_path / "p"))
    assert peft.returncode == 2 and "cannot be exported to peft" in peft.stderr and not (tmp_path / "p").exists()


def test_retrain_stores_results_in_the_study_and_report(searched, tmp_path):
    _folder, url = searched
    args = ["retrain", "--storage", url, "--study", "t", "--top", "1", "--seeds", "40,41", "--epochs", "2"]
    args += ["--patience", "1", "--max-train-samples", "64", "--max-eval-samples", "48"]
    result = autopeft(*args)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    (_number, summary), *_ = final["retrained"].items()
    assert final["metric_name"] == "accuracy" and 0 <= summary["mean"] <= 1 and summary["std"] >= 0
    report = autopeft("report", "--storage", url, "--study", "t", "--out", str(tmp_path / "r"))
    assert report.returncode == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert f"{summary['mean']:.4f} ± {summary['std']:.4f} (n=2)" in text


def test_transfer_to_another_task(searched, tmp_path):
    _, url = searched
    args = ["transfer", "--storage", url, "--study", "t", "--task", "mrpc", "--top", "1", "--seeds", "1"]
    args += ["--epochs", "1", "--max-train-samples", "48", "--max-eval-samples", "32"]
    result = autopeft(*args)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["task"] == "mrpc" and final["metric_name"] == "f1_accuracy_mean" and len(final["transfer"]) == 1
    assert autopeft("report", "--storage", url, "--study", "t", "--out", str(tmp_path / "r")).returncode == 0
    assert "## Transferred to mrpc" in (tmp_path / "r" / "report.md").read_text()


def test_transfer_to_the_study_s_own_task_points_to_retrain(searched, capsys):
    from autopeft.cli import main

    folder, url = searched
    before = (folder / "s.db").read_bytes()
    assert main(["transfer", "--storage", url, "--study", "t", "--task", "rte"]) == 2
    err = capsys.readouterr().err
    assert "is the study's own task: `autopeft retrain`" in err and len(err.strip().splitlines()) == 1
    assert (folder / "s.db").read_bytes() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_renders_the_study_and_its_pareto_front(searched):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
    folder, url = searched
    port = _free_port()
    dashboard = [str(Path(sys.executable).parent / "optuna-dashboard"), url, "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(dashboard, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                studies = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        study_id = next(s["study_id"] for s in studies["study_summaries"] if s["study_name"] == "t")
        page = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
        flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        flags += ["--window-size=1400,1800", "--virtual-time-budget=15000"]
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        profile = folder / "chromium-profile"
        run = [chromium, *flags, f"--user-data-dir={profile}"]
        dom = subprocess.run([*run, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
        subprocess.run([*run, f"--screenshot={shot}", page], capture_output=True, timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "t (id=" in dom or ">t<" in dom  # the study's name in the header
    assert "Pareto Front" in dom
    assert dom.count('class="point"') >= 4  # plotted trial markers
    assert shot.stat().st_size > 10_000
