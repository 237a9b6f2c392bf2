"""Replay the early-stopping rule on fine learning curves (`scripts/early_stop_curves.py` output, e.g.
data/benchmarks/early-stop/curves-stsb-1000x1.jsonl). usage: early_stop_replay.py CURVES.jsonl ...

The trials come in 200 random orders, as a sequential search would meet them; at each checkpoint the rule
(`autopeft.search.early_stop`) decides with the earlier trials as the finished ones. Per setting: the CPU
share against the same trials without early stopping (steps done plus scoring passes), the trials stopped,
and the false stops (stopped trials whose final score would have reached the front at their size).
"""

import json
import random
import statistics
import sys

from autopeft.search.early_stop import EarlyStop, Finished, front_score_at, should_stop

# Scoring cost in units of a trial's training, from the curves: 12.9 s of scoring (1.75 full passes)
# per 26.1 s of training at STS-B 1000x1.
EVAL_FULL, EVAL_INTERIM = 0.28, 0.07
ORDERS = 200


def replay(order: list[dict], rule: EarlyStop) -> tuple[float, int, int]:
    """(cost, stopped, false stops) of one search meeting the trials in `order`."""
    finished: list[Finished] = []
    cost, stopped, false = 0.0, 0, 0
    for t in order:
        seen, spent = [], 1.0
        for share, score, _ in t["curve"]:
            seen.append((share, score))
            if should_stop(rule, t["params"], seen, finished):
                spent = share
                break
        if spent < 1.0:
            stopped += 1
            front = front_score_at(finished, t["params"])
            false += front is None or t["final"] >= front
        else:
            finished.append(Finished(t["params"], t["final"], [(s, v) for s, v, _ in t["curve"]]))
        passes = [interim for share, _, interim in t["curve"] if share <= spent + 1e-9]
        cost += spent + sum(EVAL_INTERIM if interim else EVAL_FULL for interim in passes)
    return cost, stopped, false


def main() -> None:
    trials = []
    for path in sys.argv[1:]:
        with open(path) as lines:
            trials += [json.loads(line) for line in lines if line.startswith("{")]
    print(len(trials), "trials")
    without = len(trials) * (1 + EVAL_FULL)  # one full scoring at the end
    for min_share in (0.25, 0.5, 0.75):
        for quantile in (0.9, 0.7, 0.5):
            rule = EarlyStop(on=True, min_share=min_share, quantile=quantile)
            runs = [replay(random.Random(k).sample(trials, len(trials)), rule) for k in range(ORDERS)]
            share = statistics.mean(c for c, _, _ in runs) / without
            stopped, false = sum(s for _, s, _ in runs) / ORDERS, sum(f for _, _, f in runs) / ORDERS
            print(
                f"min_share={min_share} quantile={quantile}: CPU {share:.2f}, stopped {stopped:.1f}/{len(trials)}, "
                f"false {false:.2f} ({false / max(stopped, 1e-9):.3f} of stopped)"
            )


main()
