"""The floor under any early-stopping rule on stored searches without it: the CPU share a rule with perfect
foresight would use (`autopeft.bench.early_stop.oracle_share`), stopping at a quarter or at half of the
budget each trial that ends below the front at its size. `bench early-stop` prints it for its own pairs;
this reads older ones. usage: early_stop_oracle.py STORAGE STUDY-WITHOUT-EARLY-STOPPING ...
"""

import statistics
import sys

import optuna

from autopeft.bench.early_stop import oracle_share

SHARES = (0.25, 0.5)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, names = sys.argv[1], sys.argv[2:]
    figures = {}
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        figures[name] = [oracle_share(study, share) for share in SHARES]
        print(
            f"{name}: "
            + ", ".join(f"stop at {s:g}: {100 * f:.0f}%" for s, f in zip(SHARES, figures[name], strict=True))
        )
    for k, share in enumerate(SHARES):
        print(f"mean, stop at {share:g}: {100 * statistics.fmean(f[k] for f in figures.values()):.0f}%")


main()
