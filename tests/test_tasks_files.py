"""The user's CSV, TSV and JSON-lines files: columns, label types, and a clear error for each bad input."""

from __future__ import annotations

import json

import pytest

from autopeft.tasks import DataError, load_task


def _csv(path, rows, header="sentence,label"):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_csv_classification_with_quotes_and_commas(tmp_path):
    train = _csv(tmp_path / "train.csv", ['"good, really",pos', "bad,neg", '"said ""hi""",pos'])
    dev = _csv(tmp_path / "dev.csv", ["fine,pos"])
    task = load_task(train_file=train, dev_file=dev)
    assert task.name == "train" and task.label_names == ("neg", "pos")
    assert task.train.text_a == ("good, really", "bad", 'said "hi"') and task.train.text_b is None
    assert task.train.labels == (1, 0, 1) and task.dev.labels == (1,)
    assert task.metric_name == "accuracy" and task.source.startswith("files:")


def test_tsv_pair_with_known_columns_and_numeric_classes(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text('id\tsentence1\tsentence2\tlabel\n1\ta "b\tc\t1\n2\td\te\t0\n3\tf\tg\t10\n', encoding="utf-8")
    task = load_task("mine", train_file=train)
    assert task.name == "mine" and task.is_pair
    assert task.train.text_a[0] == 'a "b'  # quoting off, as GLUE
    assert task.label_names == ("0", "1", "10")  # numeric order
    assert task.dev is None


def test_jsonl_regression_inferred_and_text_columns_chosen(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [{"premise": "a", "hypothesis": "b", "score": 0.5}, {"premise": "c", "hypothesis": "d", "score": 3}]
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    task = load_task(train_file=train, label_column="score")
    assert task.is_regression and task.num_labels == 1 and task.train.labels == (0.5, 3.0)
    assert task.train.text_b == ("b", "d") and task.metric_name == "pearson_spearman_mean"


def test_declared_types(tmp_path):
    train = _csv(tmp_path / "t.csv", ["a,1", "b,2", "c,1.0"])
    assert load_task(train_file=train).label_names == ("1", "2")  # 1 and 1.0 are one class
    assert load_task(train_file=train, task_type="regression").is_regression
    with pytest.raises(DataError, match="'x' in column 'label' is not a number"):
        load_task(train_file=_csv(tmp_path / "u.csv", ["a,x", "b,1"]), task_type="regression")


def test_explicit_text_columns(tmp_path):
    train = _csv(tmp_path / "t.csv", ["1,hello,there,a", "2,hi,you,b"], header="id,x,y,label")
    task = load_task(train_file=train, text_columns=["y", "x"])
    assert task.train.text_a == ("there", "you") and task.train.text_b == ("hello", "hi")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_task(train_file=tmp_path / "nope.csv")


def test_wrong_columns(tmp_path):
    train = _csv(tmp_path / "t.csv", ["hello,pos"], header="text,label")
    with pytest.raises(DataError, match=r"no text column 'sentence' \(columns: text, label\)"):
        load_task(train_file=train, text_columns=["sentence"])
    with pytest.raises(DataError, match="no label column 'y'"):
        load_task(train_file=train, label_column="y")


def test_ambiguous_text_columns(tmp_path):
    train = _csv(tmp_path / "t.csv", ["1,2,3,pos", "4,5,6,neg"], header="a,b,c,label")
    with pytest.raises(DataError, match="pass --text-columns"):
        load_task(train_file=train)


def test_dev_labels_not_in_train(tmp_path):
    train = _csv(tmp_path / "train.csv", ["a,pos", "b,neg"])
    dev = _csv(tmp_path / "dev.csv", ["c,neutral", "d,pos"])
    with pytest.raises(DataError, match=r"dev labels never seen in training: 'neutral' \(training labels: neg, pos\)"):
        load_task(train_file=train, dev_file=dev)


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        load_task(train_file=empty)
    header_only = _csv(tmp_path / "h.csv", [])
    with pytest.raises(DataError, match="a header but no examples"):
        load_task(train_file=header_only)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        load_task(train_file=blank)


def test_not_utf8(tmp_path):
    train = tmp_path / "latin1.csv"
    train.write_bytes("sentence,label\ncaf\xe9,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xe9 at offset 18\)"):
        load_task(train_file=train)


def test_malformed_rows(tmp_path):
    with pytest.raises(DataError, match="line 3: 3 fields where the header has 2"):
        load_task(train_file=_csv(tmp_path / "t.csv", ["a,pos", "b,neg,extra"]))
    with pytest.raises(DataError, match="line 2: no label"):
        load_task(train_file=_csv(tmp_path / "u.csv", ["a,", "b,neg"]))
    bad_json = tmp_path / "t.jsonl"
    bad_json.write_text('{"sentence": "a", "label": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected a JSON object"):
        load_task(train_file=bad_json)


def test_one_class_is_not_a_classifier(tmp_path):
    with pytest.raises(DataError, match="every training label is 'pos'"):
        load_task(train_file=_csv(tmp_path / "t.csv", ["a,pos", "b,pos"]))


def test_unknown_extension_and_stray_dev_file(tmp_path):
    odd = tmp_path / "t.xlsx"
    odd.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'"):
        load_task(train_file=odd)
    with pytest.raises(DataError, match="--dev-file needs --train-file"):
        load_task("rte", dev_file=odd)
