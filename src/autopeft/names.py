"""Names the command line offers and the library accepts, in one place (pure data, no imports).

The optimiser, the CLI and the benches read these lists instead of retyping them.
"""

from __future__ import annotations

SPACES: tuple[str, ...] = ("paper", "extended")
SURROGATES: tuple[str, ...] = ("saas", "saas-map", "gp")
"""saas: SAAS GP, fully Bayesian by NUTS (Eriksson and Jankowiak, 2021), as the paper.
saas-map: the same SAAS prior, hyperparameters by MAP (botorch's `get_fitted_map_saas_model`), fast.
gp: botorch's default SingleTaskGP (dimension-scaled log-normal length-scale prior, no sparsity)."""
BASELINES: tuple[str, ...] = ("random", "tpe", "nsga2", "gp")  # the field's optimisers AutoPEFT must beat
ABLATIONS: tuple[str, ...] = ("autopeft-params-modelled", "autopeft-plain-gp")  # AutoPEFT less one design choice
SAMPLERS: tuple[str, ...] = ("autopeft", *BASELINES, *ABLATIONS)
GLUE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
"""In GLUE's order; `autopeft.tasks.glue.TASKS` defines each and checks it covers exactly these."""
MODES: tuple[str, ...] = (
    "search",
    "final",
)  # search: score a held-out slice of train; final: train on train, score dev
