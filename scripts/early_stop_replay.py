"""Replay early stopping on fine learning curves (scripts/early_stop_curves.py output, e.g. data/benchmarks/early-stop/curves-stsb-1000x1.jsonl): trials in a random order as a
sequential search would meet them; at each checkpoint the rule (autopeft.search.early_stop) decides with
the earlier trials as the finished ones. Prints, per setting, the CPU share (steps done, plus scoring
cost) and the false stops (stopped trials whose final score would have reached the front at their size)."""
import json, random, statistics, sys
from autopeft.search.early_stop import EarlyStop, Finished, front_score_at, should_stop

trials = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.startswith("{")]
print(len(trials), "trials")
EVAL_FULL, EVAL_INTERIM = 0.28, 0.07  # scoring cost in units of a trial's training (curves: 12.9 s of scoring, 1.75 full passes, per 26.1 s of training)

def replay(order, rule, use_interim):
    finished, cost, stopped, false = [], 0.0, 0, 0
    for t in order:
        points = [(s, v) for s, v, interim in t["curve"] if use_interim or not interim]
        spent = None
        seen = []
        for s, v in points:
            seen.append((s, v))
            if should_stop(rule, t["params"], seen, finished):
                spent = s
                break
        if spent is None:
            finished.append(Finished(t["params"], t["final"], [(s, v) for s, v, i in t["curve"]]))
            spent = 1.0
        else:
            stopped += 1
            front = front_score_at(finished, t["params"])
            if front is None or t["final"] >= front:
                false += 1
        n_full = sum(1 for s, v, i in t["curve"] if not i and s <= spent + 1e-9)
        n_int = sum(1 for s, v, i in t["curve"] if i and s <= spent + 1e-9) if use_interim else 0
        cost += spent + n_full * EVAL_FULL + n_int * EVAL_INTERIM
    return cost, stopped, false

base_cost = sum(1 + EVAL_FULL for _ in trials)  # without early stopping: one full scoring at the end
for use_interim in (True,):
    for min_share in (0.25, 0.5, 0.75):
        for q in (0.9, 0.7, 0.5):
            rule = EarlyStop(on=True, min_share=min_share, quantile=q)
            shares, stops, falses = [], 0, 0
            for rep in range(200):
                order = trials[:]
                random.Random(rep).shuffle(order)
                c, s, f = replay(order, rule, use_interim)
                shares.append(c / base_cost); stops += s; falses += f
            print(f"interim={use_interim} min_share={min_share} q={q}: CPU {statistics.mean(shares):.2f}, "
                  f"stopped {stops/200:.1f}/{len(trials)}, false {falses/200:.2f} ({falses/max(stops,1):.3f} of stopped)")
