"""`autopeft bench ...`: benchmarks that print their figures and a last line of JSON."""

from __future__ import annotations

import argparse
import importlib

HELP = "benchmarks (engine speed, optimisers, GLUE results)"

# bench subcommand -> module under autopeft.cli, defining HELP, add_arguments(parser), run(args) -> int
BENCHES: dict[str, str] = {
    "engine": "bench_engine",
    "optimizers": "bench_optimizers",
    "make-pool": "bench_pool",
    "glue": "bench_glue",
    "modules": "bench_modules",
    "early-stop": "bench_early_stop",
    "warm-start": "bench_warm_start",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True, parser_class=type(parser))
    for name, module_name in BENCHES.items():
        module = importlib.import_module(f"autopeft.cli.{module_name}")
        bench = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(bench)
        bench.set_defaults(_bench_run=module.run)


def run(args: argparse.Namespace) -> int:
    return args._bench_run(args)
