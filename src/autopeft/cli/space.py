"""`autopeft space`: sample configurations of the search space with their exact parameter counts."""

from __future__ import annotations

import argparse
import json
import random
import sys

from autopeft.names import SPACES

HELP = "print sampled configurations of the search space with exact parameter counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="minilm", help="local model folder, hub id, or minilm/tiny-bert/tiny-roberta"
    )
    parser.add_argument("--space", choices=SPACES, default="paper")
    parser.add_argument("--sample", type=int, default=10, metavar="N", help="how many configurations (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", metavar="JSON", help="check and count this configuration instead of sampling")
    parser.add_argument("--num-labels", type=int, default=2, help="labels of the task head (1 = regression)")
    parser.add_argument("--verify", action="store_true", help="build each configuration and compare counts")


def run(args: argparse.Namespace) -> int:
    from autopeft import models
    from autopeft.params import param_count
    from autopeft.space import PEFTConfig, SearchSpace

    if args.sample < 1:
        raise models.UserError(f"--sample must be at least 1, got {args.sample}")
    if args.num_labels < 1:
        raise models.UserError(f"--num-labels must be at least 1 (1: regression), got {args.num_labels}")
    spec = models.resolve(args.model)
    hf_config = models.load_config(spec)
    dims = models.dims_from_config(hf_config)
    space = SearchSpace(dims.num_layers, dims.hidden_size, args.space)
    if args.config is not None:
        config = PEFTConfig.from_json(args.config)
        space.check(config)
        configs = [config]
    else:
        rng = random.Random(args.seed)
        configs = [space.sample(rng) for _ in range(args.sample)]

    for config in configs:
        count = param_count(config, dims, args.num_labels)
        print(json.dumps({"config": config.to_dict(), **count.to_dict()}), flush=True)
    if not args.verify:
        return 0

    from autopeft.peft.verify import first_mismatch

    model = models.load_adapter_model(spec, hf_config)
    mismatch = first_mismatch(model, dims, configs, args.num_labels)
    if mismatch is not None:
        print(f"mismatch: {mismatch}", file=sys.stderr)
        print(f"verified: first mismatch at {mismatch}")
        return 1
    print(f"verified {len(configs)}/{len(configs)} exact")
    return 0
