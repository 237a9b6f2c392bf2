#!/usr/bin/env python3
"""Copy a finished study under another name in the same storage (nothing happens if that name exists).

Used to compare a changed rule against searches already paid for: `bench early-stop` runs the searches
named `<name>-<task>-s<seed>-<mode>`, so copying its "off" studies under a new name makes it run only
the "on" ones.

    scripts/copy_study.py sqlite:///data/studies/early-stop.db early-stop-100-stsb-s0-off early-stop-100p-stsb-s0-off
"""

import sys

import optuna


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: copy_study.py STORAGE FROM_NAME TO_NAME", file=sys.stderr)
        return 2
    storage, source, target = sys.argv[1:]
    names = set(optuna.get_all_study_names(storage))
    if source not in names:
        print(f"copy_study.py: no study {source!r} in {storage}", file=sys.stderr)
        return 2
    if target not in names:
        optuna.copy_study(from_study_name=source, from_storage=storage, to_storage=storage, to_study_name=target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
