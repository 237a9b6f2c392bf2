"""The floor of a task: what a constant prediction (the majority class, or the mean score) scores.

A run that scores exactly the floor learnt nothing. This module imports nothing heavy: the CLI's
parser reaches it through the GLUE page's table.
"""

from __future__ import annotations


def at_floor(score: float, floor: float) -> bool:
    """The run scored exactly what a constant prediction scores (its floor): it learnt nothing."""
    return abs(score - floor) < 1e-9
