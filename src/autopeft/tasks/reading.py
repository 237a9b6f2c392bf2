"""Reading task files: strict UTF-8, rows split on tabs (GLUE) or parsed as CSV / JSON lines."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from autopeft.errors import UserError


class DataError(UserError):
    """A data file that is missing, empty, not UTF-8 or not laid out as expected."""


def read_text(path: str | Path) -> str:
    """The file's text: UTF-8 with an optional byte-order mark (MRPC has one), anything else refused."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); re-save it as UTF-8"
        ) from None


def tsv_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line, split on tabs with quoting off, as GLUE's readers do.

    Quotes are data in GLUE (STS-B and SST-2 sentences contain them), so `csv` quoting must not apply.
    """
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            rows.append((number, line.split("\t")))
    return rows


def table_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(column names, [(line number, row)]) of a user's CSV, TSV or JSON-lines file with a header."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _jsonl_rows(path, text)
    if suffix == ".tsv":
        numbered = tsv_rows(text)
    elif suffix == ".csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        numbered = [(reader.line_num, fields) for fields in reader if any(f.strip() for f in fields)]
    else:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv or .jsonl")
    if not numbered:
        raise DataError(f"{path}: the file is empty")
    (_, header), *body = numbered
    header = [name.strip() for name in header]
    rows = []
    for number, fields in body:
        if len(fields) != len(header):
            raise DataError(f"{path}, line {number}: {len(fields)} fields where the header has {len(header)}")
        rows.append((number, dict(zip(header, fields, strict=True))))
    return header, rows


def _jsonl_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    rows = []
    columns: dict[str, None] = {}  # ordered union of the keys seen
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object per line, got {type(row).__name__}")
        columns |= dict.fromkeys(row)
        rows.append((number, row))
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return list(columns), rows
