"""GLUE tasks: the local TSVs parse to the official row counts and labels; missing data fails clearly."""

from __future__ import annotations

import sys
import types
from collections import Counter

import pytest

from autopeft.tasks import TASKS, DataError, TaskError, get_task, load_glue, load_task

# Rows and label counts from shared/data/glue/PROVENANCE.md (header lines excluded).
LOCAL = {
    "rte": (2490, 277, {0: 1249, 1: 1241}, {0: 146, 1: 131}),  # entailment, not_entailment
    "mrpc": (3668, 408, {0: 1194, 1: 2474}, {0: 129, 1: 279}),
    "stsb": (5749, 1500, None, None),
    "cola": (8551, 1043, {0: 2528, 1: 6023}, {0: 322, 1: 721}),
}


def test_nine_glue_tasks_with_their_metrics():
    assert list(TASKS) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]
    headline = {name: t.metric for name, t in TASKS.items()}
    assert headline["cola"] == "matthews"
    assert headline["stsb"] == "pearson_spearman"
    assert headline["mrpc"] == headline["qqp"] == "f1_accuracy"
    assert {headline[n] for n in ("sst2", "mnli", "qnli", "rte", "wnli")} == {"accuracy"}
    assert [suffix for suffix, _ in TASKS["mnli"].dev_files] == ["", "mm"]
    assert get_task("RTE") is TASKS["rte"]


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_local_tasks_parse_to_official_counts(glue_dir, name):
    train_rows, dev_rows, train_labels, dev_labels = LOCAL[name]
    task = load_glue(name, glue_dir)
    assert (len(task.train), len(task.dev)) == (train_rows, dev_rows)
    assert task.train.skipped_rows == task.dev.skipped_rows == 0
    assert task.source.startswith("glue-tsv:")
    if train_labels is None:
        assert task.is_regression and task.num_labels == 1
        assert min(task.train.labels) == 0.0 and max(task.train.labels) == 5.0
    else:
        assert Counter(task.train.labels) == train_labels
        assert Counter(task.dev.labels) == dev_labels
        assert task.num_labels == 2
    assert task.is_pair == (name != "cola")


def test_mrpc_byte_order_mark_is_not_data(glue_dir):
    task = load_glue("mrpc", glue_dir)
    assert task.train.text_a[0].startswith("Amrozi accused his brother")
    assert not any(t.startswith("\ufeff") for t in task.train.text_a[:5])


def test_stsb_quotes_are_kept_as_text(glue_dir):
    # quoting off: a sentence with quotes must not swallow the tabs that follow it
    task = load_glue("stsb", glue_dir)
    quoted = [t for t in task.train.text_a if '"' in t]
    assert quoted and 'A dog in a "superman" shirt sleeps on a blanket.' in quoted
    assert task.train.labels[0] == 5.0


def test_cola_has_no_header(glue_dir):
    task = load_glue("cola", glue_dir)
    assert task.train.text_a[0] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert task.train.text_b is None


def test_env_folder_is_used(glue_dir, monkeypatch):
    monkeypatch.setenv("AUTOPEFT_GLUE_DIR", str(glue_dir))
    assert len(load_task("rte").train) == 2490


def test_unknown_task():
    with pytest.raises(TaskError, match="unknown task 'nli'"):
        load_task("nli")


def test_explicit_glue_dir_without_the_task(tmp_path):
    with pytest.raises(TaskError, match="has no RTE/"):
        load_glue("rte", tmp_path)


def test_missing_task_without_datasets_says_how_to_provide_data(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPEFT_GLUE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(TaskError) as err:
        load_task("sst2")
    message = str(err.value)
    assert "not installed" in message and "--glue-dir" in message and "--train-file" in message
    assert "\n" not in message


def test_datasets_loader_is_used_when_available(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPEFT_GLUE_DIR", str(tmp_path))
    calls = []

    def load_dataset(path, name):
        calls.append((path, name))
        split = {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [0, 2]}
        return {"train": split, "validation_matched": split, "validation_mismatched": split}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    task = load_task("mnli")
    assert calls == [("glue", "mnli")]
    assert task.train.text_a == ("p1", "p2") and task.train.labels == (0, 2)
    assert task.label_names == ("entailment", "neutral", "contradiction")
    assert set(task.extra_evals) == {"mm"} and task.source == "hf-datasets:glue"


def test_datasets_loader_failure_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPEFT_GLUE_DIR", str(tmp_path))

    def load_dataset(path, name):
        raise ConnectionError("Couldn't reach 'glue' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(TaskError, match=r"could not load it \(Couldn't reach 'glue'.*\); put the GLUE TSVs") as err:
        load_task("qnli")
    assert "\n" not in str(err.value)


def _write_glue(tmp_path, folder, train, dev, dev_name="dev.tsv"):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "train.tsv").write_text(train, encoding="utf-8")
    (tmp_path / folder / dev_name).write_text(dev, encoding="utf-8")
    return tmp_path


def test_qqp_rows_with_missing_fields_are_skipped_and_counted(tmp_path):
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    train = header + "1\t1\t2\tq a\tq b\t1\n2\t3\t4\tbroken row\n3\t5\t6\tq c\tq d\t0\n"
    glue = _write_glue(tmp_path, "QQP", train, header + "9\t1\t2\tx\ty\t0\n")
    task = load_glue("qqp", glue)
    assert len(task.train) == 2 and task.train.skipped_rows == 1
    assert task.metric_name == "f1_accuracy_mean"


def test_mnli_reads_gold_label_and_both_dev_sets(tmp_path):
    header = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
    rows = "0\t1\t1\tg\tpremise\thypothesis\tneutral\tneutral\n1\t1\t1\tg\tp2\th2\tentailment\tcontradiction\n"
    glue = _write_glue(tmp_path, "MNLI", header + rows, header + rows, "dev_matched.tsv")
    (glue / "MNLI" / "dev_mismatched.tsv").write_text(header + rows[: rows.index("\n") + 1], encoding="utf-8")
    task = load_glue("mnli", glue)
    assert task.train.labels == (1, 2)  # neutral, contradiction in the datasets order
    assert task.dev.name == "dev_matched" and len(task.extra_evals["mm"]) == 1


def test_unknown_label_in_a_glue_file_names_the_line(tmp_path):
    header = "index\tsentence1\tsentence2\tlabel\n"
    glue = _write_glue(tmp_path, "RTE", header + "0\ta\tb\tmaybe\n", header + "0\ta\tb\tentailment\n")
    with pytest.raises(DataError, match=r"train.tsv, line 2: label 'maybe' is not one of entailment, not_entailment"):
        load_glue("rte", glue)


def test_glue_file_with_a_wrong_header(tmp_path):
    glue = _write_glue(tmp_path, "RTE", "a\tb\n1\t2\n", "a\tb\n1\t2\n")
    with pytest.raises(DataError, match="no column 'sentence1' for GLUE task rte"):
        load_glue("rte", glue)
