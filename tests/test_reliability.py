"""Every bad input of `scripts/reliability.py` is refused in one line with exit code 2, changes no file,
and `docs/RELIABILITY.md` is the table those runs give (in-process, all of them: about 15 s)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("reliability", REPO / "scripts" / "reliability.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_bad_input_is_refused_in_one_line_and_the_page_is_current():
    reliability = _script()
    assert len(reliability.CASES) >= 100
    outcomes = reliability.run_all()
    problems = {o.command: o.problems() for o in outcomes if o.problems()}
    assert not problems
    assert reliability.PAGE.read_text(encoding="utf-8") == reliability.render(outcomes), (
        "docs/RELIABILITY.md is stale: run scripts/reliability.py"
    )
