"""Tokenise once, pad per batch, group by length; every example is trained and scored exactly once per epoch."""

from __future__ import annotations

import numpy as np

from autopeft import models
from autopeft.engine.tokens import TokenCache, encode, eval_batches, train_batches
from autopeft.tasks import Split


def _tokenizer():
    return models.load_tokenizer(models.resolve("tiny-bert"))


def test_cache_tokenises_once_per_split_tokenizer_and_length():
    tok = _tokenizer()
    split = Split("train", ("a short one", "a somewhat longer sentence here"), ("x", "y"), (0, 1))
    cache = TokenCache()
    first = cache.get(split, tok, "minilm", 128, True)
    assert cache.get(split, tok, "minilm", 128, True) is first and cache.misses == 1
    cache.get(split, tok, "minilm", 8, True)
    cache.get(Split("train", split.text_a, split.text_b, split.labels), tok, "minilm", 128, True)
    assert cache.misses == 3  # another length, another split object
    assert first.lengths.tolist() == [len(x) for x in first.ids] and first.types is not None


def test_truncation_pairs_and_segment_ids():
    tok = _tokenizer()
    split = Split("dev", ("word " * 100, "hi"), ("other " * 100, "there"), (1.5, 2.0))
    enc = encode(split, tok, 32, use_types=True)
    assert enc.lengths.tolist()[0] == 32 and enc.labels.dtype == np.float32
    assert set(enc.types[1].tolist()) == {0, 1}
    assert encode(split, tok, 32, use_types=False).types is None


def test_batches_are_padded_to_their_longest_row():
    tok = _tokenizer()
    split = Split("train", ("a", "b c d e f g", "h i"), None, (0, 1, 0))
    enc = encode(split, tok, 128, use_types=True)
    batch = enc.batch(np.array([0, 2]))
    assert batch["input_ids"].shape == (2, int(enc.lengths[[0, 2]].max()))
    assert batch["attention_mask"].sum().item() == int(enc.lengths[[0, 2]].sum())
    assert batch["labels"].tolist() == [0, 0] and set(batch) == {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "labels",
    }


def test_train_batches_cover_rows_once_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, 1000)
    rows = np.arange(0, 1000, 2)
    batches = train_batches(lengths, rows, 16, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == rows.tolist()
    assert lengths[batches[0]].max() == lengths[rows].max()  # longest first: OOM shows at step one
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 0.7 * len(rows) * 120  # far less padding than padding to the maximum
    again = train_batches(lengths, rows, 16, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # seeded


def test_eval_batches_are_sorted_by_length():
    lengths = np.array([9, 3, 7, 1, 5])
    batches = eval_batches(lengths, np.array([0, 1, 2, 3, 4]), 2)
    assert [b.tolist() for b in batches] == [[3, 1], [4, 2], [0]]
