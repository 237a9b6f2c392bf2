"""The committed studies still load through the study record, and the GLUE page is reproduced byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna

from autopeft.cli import main
from autopeft.search.record import StudyRecord
from autopeft.search.report import write_report
from autopeft.search.results import completed_rows, pareto_rows

REPO = Path(__file__).resolve().parents[1]
DB = REPO / "data" / "studies" / "glue-minilm.db"
DB_V2 = REPO / "data" / "studies" / "glue-minilm-v2.db"


def test_every_committed_search_study_loads_and_reports(tmp_path):
    copy = tmp_path / "glue.db"
    shutil.copy(DB, copy)
    url = f"sqlite:///{copy}"
    searches = [s.study_name for s in optuna.get_all_study_summaries(url) if "-search-" in s.study_name]
    assert len(searches) == 4
    for name in searches:
        study = optuna.load_study(study_name=name, storage=url)
        record = StudyRecord.load(study)
        assert record.model == "minilm" and record.trials == 20 and record.fidelity.pooling == "mean"
        assert record.data.name == record.task and record.constant_prediction is not None
        rows = completed_rows(study)
        assert len(rows) == 20 and pareto_rows(rows)
        assert (write_report(study, tmp_path / name)["report"]).read_text().startswith(f"# AutoPEFT search `{name}`")


def _page(db: Path, notes: Path, glue_dir, tmp_path) -> Path:
    """The page `bench glue --report-only` writes from a copy of `db` with `notes` as its discussion (PNGs beside)."""
    copy = tmp_path / "glue.db"
    shutil.copy(db, copy)
    shutil.copy(notes, tmp_path / "RESULTS.notes.md")
    out = tmp_path / "RESULTS.md"
    argv = ["bench", "glue", "--report-only", "--storage", f"sqlite:///{copy}", "--glue-dir", str(glue_dir)]
    assert main([*argv, "--out", str(out)]) == 0
    return out


def test_the_first_edition_kept_in_docs_is_the_page_the_study_writes(glue_dir, tmp_path):
    out = _page(DB, REPO / "docs" / "results-v1.notes.md", glue_dir, tmp_path)
    # docs/results-v1.md: the page with a note under its title and its links made relative to docs/
    body = out.read_text().split("\n", 1)[1].replace("](RESULTS.png)", "](figures/results-v1.png)")
    kept = (REPO / "docs" / "results-v1.md").read_text()
    assert kept.endswith(body.replace("](docs/", "]("))
    assert (REPO / "docs" / "figures" / "results-v1.png").read_bytes() == (tmp_path / "RESULTS.png").read_bytes()


def test_the_results_page_is_the_page_the_second_edition_study_writes(glue_dir, tmp_path):
    out = _page(DB_V2, REPO / "RESULTS.notes.md", glue_dir, tmp_path)
    assert out.read_text() == (REPO / "RESULTS.md").read_text()
    for figure in ["RESULTS.png", *(f"RESULTS-{task}.png" for task in ("cola", "mrpc", "stsb", "rte"))]:
        assert (tmp_path / figure).read_bytes() == (REPO / figure).read_bytes(), figure
