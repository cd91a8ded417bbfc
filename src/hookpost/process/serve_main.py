"""What ``hookpost serve`` becomes once it has migrated and printed its banner: a supervisor
of its children and nothing else.

``hookpost serve`` itself loads the CLI, settings, Alembic and the models (85 MB); it execs
into this module (same pid, so signals still reach it), which loads only the supervisor and
the log format: 15 MB for the rest of the service's life. The children's argv come as JSON
in the one argument; their environment is this process's own.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from hookpost.observability.logging import FORMAT_VARIABLE, configure_logging
from hookpost.process.supervisor import ChildSpec, Supervisor

MODULE = "hookpost.process.serve_main"
STOPPED = "Hookpost stopped."


def serve_argv(children: Sequence[ChildSpec]) -> list[str]:
    """The command line that supervises ``children`` (each with this process's environment)."""
    specs = [{"name": child.name, "argv": list(child.argv)} for child in children]
    return [sys.executable, "-m", MODULE, json.dumps(specs)]


def main(argv: Sequence[str]) -> int:
    children = [ChildSpec(spec["name"], spec["argv"]) for spec in json.loads(argv[0])]
    configure_logging("json" if os.environ.get(FORMAT_VARIABLE) == "json" else "plain")
    outcome = Supervisor(children).run()
    if outcome.died is not None:
        print(f"hookpost: {outcome.died.describe()} unexpectedly; stopped the other processes.", file=sys.stderr)
        return outcome.exit_code
    print(STOPPED)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
