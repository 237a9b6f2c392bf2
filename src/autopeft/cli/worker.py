"""`autopeft worker`: join a search study and run its trials (see `autopeft.cli.search`)."""

from autopeft.cli.search import WORKER_HELP as HELP
from autopeft.cli.search import add_worker_arguments as add_arguments
from autopeft.cli.search import run_worker as run

__all__ = ["HELP", "add_arguments", "run"]
