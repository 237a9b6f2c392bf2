"""Fine learning curves for the early-stopping rule's design. usage: early_stop_curves.py START COUNT [FIDELITY]

Random configurations of the paper space (seeded draw, trials START..START+COUNT-1), STS-B with MiniLM,
by default at the calibrated 1000x1 with 4 evaluations an epoch, the within-epoch ones on a quarter of
the scoring set (what `search --early-stop on` uses there). One JSON line per trial on stdout: params,
final (best full) score, curve [(share of steps, score, interim)], training and scoring seconds.
"""

import json
import random
import sys

from autopeft import models
from autopeft.engine import Engine, Fidelity
from autopeft.optim import Budget
from autopeft.space import SearchSpace
from autopeft.tasks import load_task

CURVES_FIDELITY = (
    "epochs=1,max_train_samples=1000,batch_size=16,pooling=mean,lr=1e-3,evals_per_epoch=4,interim_eval_fraction=0.25"
)

start, count = int(sys.argv[1]), int(sys.argv[2])
fidelity = Fidelity.parse(sys.argv[3] if len(sys.argv) > 3 else CURVES_FIDELITY)
dims = models.dims_of("minilm")
space = SearchSpace(dims.num_layers, dims.hidden_size, "paper")
budget = Budget.of(space, dims, None, None)
engine = Engine("minilm", load_task(name="stsb"))
rng = random.Random(1234)
configs = [budget.sample(rng) for _ in range(start + count)][start:]
for i, config in enumerate(configs, start=start):
    res = engine.run_trial(config, fidelity, seed=0, mode="search")
    curve = [(h["step"] / res.steps, h[res.metric_name], bool(h.get("interim"))) for h in res.history]
    line = {"i": i, "config": config.to_dict(), "params": res.params, "final": res.headline, "curve": curve}
    print(json.dumps(line | {"train_seconds": res.train_seconds, "eval_seconds": res.eval_seconds}), flush=True)
