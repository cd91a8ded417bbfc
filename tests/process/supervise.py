"""Runs a Supervisor as its own process, as ``hookpost serve`` does, for the tests.

Usage: ``python supervise.py '{"stop_timeout": 5, "children": [{"name": ..., "argv": [...]}]}'``,
optionally with ``"repeat_interval"``.
Prints the outcome as JSON and exits with its exit code.
"""

from __future__ import annotations

import json
import logging
import sys

from hookpost.process.supervisor import REPEAT_INTERVAL, ChildSpec, Supervisor


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    plan = json.loads(sys.argv[1])
    children = [ChildSpec(child["name"], child["argv"]) for child in plan["children"]]
    repeat_interval = plan.get("repeat_interval", REPEAT_INTERVAL)
    outcome = Supervisor(children, stop_timeout=plan["stop_timeout"], repeat_interval=repeat_interval).run()
    print(
        json.dumps(
            {
                "stop_signal": outcome.stop_signal.name if outcome.stop_signal else None,
                "died": outcome.died.describe() if outcome.died else None,
            }
        ),
        flush=True,
    )
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
