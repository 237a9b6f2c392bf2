"""`autopeft` command line: one small module per subcommand, each with `add_arguments` and `run`.

Subcommand modules import only light modules at top level, so `autopeft --help` stays fast; the
heavy libraries load inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from autopeft import __version__
from autopeft.errors import UserError

# name -> module under autopeft.cli; the module defines HELP, add_arguments(parser) and run(args) -> int
SUBCOMMANDS: dict[str, str] = {
    "space": "space",
    "train": "train",
    "calibrate": "calibrate",
    "search": "search",
    "worker": "worker",
    "report": "report",
    "retrain": "retrain",
    "export": "export",
    "transfer": "transfer",
    "bench": "bench",
}


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2, as argparse does, but shorter
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="autopeft", description="Find the best PEFT configuration for a model and a task.")
    parser.add_argument("--version", action="version", version=f"autopeft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"autopeft.cli.{module_name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return args._run(args)
    except UserError as err:
        print(f"autopeft {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autopeft {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
