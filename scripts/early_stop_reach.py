"""How many trials of a multi-objective search reach the front at their size when they finish, by search
length: the ceiling on what any early-stopping rule saves (issue 15). A trial that reaches the front must
run to the end; with perfect foresight every other one stops at the rule's minimum share, so the CPU share
is at least min_share + (1 - min_share) x (share reaching). usage: early_stop_reach.py [POOL.csv] [RUNS-DIR]

Trials are scored by the pool of real evaluations (default data/pools/stsb-minilm.csv, the mean over seeds
where a configuration was repeated): the optimisers' stored runs on it (40 trials; random's 80) (`bench optimizers
--problem pool:...`, default data/benchmarks/optimizers-pool-stsb-floor0/runs), and the whole pool in 200
random orders for longer searches.
"""

import collections
import csv
import glob
import json
import random
import statistics
import sys

POOL = sys.argv[1] if len(sys.argv) > 1 else "data/pools/stsb-minilm.csv"
RUNS = sys.argv[2] if len(sys.argv) > 2 else "data/benchmarks/optimizers-pool-stsb-floor0/runs"
SHARES = (0.25, 0.5)


def canonical(config: str) -> str:
    return json.dumps(json.loads(config), separators=(",", ":"))


def load_pool(path: str) -> tuple[dict[str, float], dict[str, int]]:
    scores, params = collections.defaultdict(list), {}
    with open(path) as rows:
        for row in csv.DictReader(rows):
            scores[canonical(row["config"])].append(float(row["metric"]))
            params[canonical(row["config"])] = int(row["params"])
    return {c: statistics.fmean(v) for c, v in scores.items()}, params


def reaches(order: list[str], metric: dict[str, float], params: dict[str, int]) -> list[bool]:
    """Per trial: whether it ends above every earlier trial with no more parameters (the front at its size)."""
    flags, seen = [], []
    for c in order:
        front = max((m for p, m in seen if p <= params[c]), default=None)
        flags.append(front is None or metric[c] > front)
        seen.append((params[c], metric[c]))
    return flags


def by_window(runs: list[list[bool]], width: int) -> list[float]:
    return [statistics.fmean(statistics.fmean(r[i : i + width]) for r in runs) for i in range(0, len(runs[0]), width)]


def floor_words(share_reaching: float) -> str:
    return ", ".join(f"{100 * (s + (1 - s) * share_reaching):.0f} % stopping at {s:g}" for s in SHARES)


def main() -> None:
    metric, params = load_pool(POOL)
    runs = collections.defaultdict(list)
    for path in sorted(glob.glob(f"{RUNS}/*.json")):
        with open(path) as f:
            run = json.load(f)["run"]
        runs[run["label"]].append(reaches([canonical(c) for c in run["configs"]], metric, params))
    print(f"share of trials reaching the front at their size, by 10-trial window ({POOL}):")
    for label, flags in sorted(runs.items()):
        windows = " ".join(f"{w:.2f}" for w in by_window(flags, 10))
        share = statistics.fmean(map(statistics.fmean, flags))
        print(f"  {label:18s} {windows}   all: {share:.2f} ({len(flags)} seeds x {len(flags[0])} trials)")
    orders = [reaches(random.Random(k).sample(list(metric), len(metric)), metric, params) for k in range(200)]
    print(f"the whole pool ({len(metric)} configurations) in 200 random orders:")
    for n in (30, 40, 100, 200, len(metric)):
        share = statistics.fmean(statistics.fmean(o[:n]) for o in orders)
        print(f"  first {n:3d} trials: {share:.2f} reach; perfect foresight uses {floor_words(share)}")
    for label, flags in sorted(runs.items()):
        share = statistics.fmean(map(statistics.fmean, flags))
        print(f"  {label} ({len(flags[0])} trials): perfect foresight uses {floor_words(share)}")


main()
