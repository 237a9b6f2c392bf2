"""usage: early_stop_curves.py START COUNT [FIDELITY] > curves.jsonl
Fine learning curves for early-stopping design: random configurations of the paper space (the search's
budget), STS-B at the calibrated 1000x1 (default regime), 4 evaluations an epoch (the within-epoch ones on a quarter
of the scoring set). One JSON line per trial: params, final (best full) score, curve [(share, score, interim)]."""
import json, random, sys
from autopeft import models
from autopeft.engine import Engine, Fidelity
from autopeft.optim import Budget
from autopeft.space import SearchSpace
from autopeft.tasks import load_task

start, count = int(sys.argv[1]), int(sys.argv[2])
dims = models.dims_of("minilm")
space = SearchSpace(dims.num_layers, dims.hidden_size, "paper")
budget = Budget.of(space, dims, None, None)
engine = Engine("minilm", load_task(name="stsb", glue_dir="/work/shared/data/glue"))
fid = Fidelity.parse(sys.argv[3] if len(sys.argv) > 3 else "epochs=1,max_train_samples=1000,batch_size=16,pooling=mean,lr=1e-3,evals_per_epoch=4,interim_eval_fraction=0.25")
rng = random.Random(1234)
configs = [budget.sample(rng) for _ in range(start + count)][start:]
for i, config in enumerate(configs, start=start):
    res = engine.run_trial(config, fid, seed=0, mode="search")
    total = res.steps
    curve = [(h["step"] / total, h[res.metric_name], bool(h.get("interim"))) for h in res.history]
    print(json.dumps({"i": i, "config": config.to_dict(), "params": res.params, "final": res.headline, "curve": curve,
                      "train_seconds": res.train_seconds, "eval_seconds": res.eval_seconds}), flush=True)
