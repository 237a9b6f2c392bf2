"""A calibration probe as `autopeft calibrate` stores it, for tests of what reads probes."""

from __future__ import annotations


def stored_probe(url: str, chosen: bool, epochs: int = 2, task: str = "rte") -> dict:
    """A probe for tiny-bert on `task` as `calibrate` stores it, whose second rung has signal (or none)."""
    from autopeft.engine import Fidelity
    from autopeft.search.calibrate import CALIBRATION_BASE, store_probe
    from autopeft.search.storage import open_storage
    from autopeft.space import PEFTConfig

    base = Fidelity.parse(CALIBRATION_BASE)
    rungs = []
    for examples, signal in ((32, False), (64, chosen)):
        fidelity = base.replace(max_train_samples=examples, epochs=epochs, patience=None).to_dict()
        runs = [
            {"config": PEFTConfig.shared([0], serial=s).to_json(), "seed": seed, "score": 0.5 + s / 100, "params": 0}
            for s in (2, 8)
            for seed in (0, 1)
        ]
        rungs.append({"rung": f"{examples}x{epochs}", "fidelity": fidelity, "seconds_per_trial": 1.0,
                      "ratio": 5.0 if signal else 0.5, "margin": 4.0, "best": 0.58, "floor": 0.5, "se": 0.02,
                      "runs": runs, "has_signal": signal})  # fmt: skip
    probe = {"model": "tiny-bert", "task": task, "space": "paper", "metric": "accuracy", "base": base.to_dict(),
             "min_ratio": 3.0, "min_margin": 3.0, "rungs": rungs, "chosen": rungs[1]["fidelity"] if chosen else None,
             "seconds": 2.0}  # fmt: skip
    store_probe(open_storage(url), f"probe-{task}-tiny-bert-paper", probe)
    return probe
