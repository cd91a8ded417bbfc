"""Trivial long-running children for the supervisor tests.

``python children.py sleep MARKER``: touch MARKER, then sleep.
``python children.py fork MARKER GRANDCHILD_MARKER``: start a sleeping grandchild, then sleep.
``python children.py ignore-term MARKER``: ignore SIGTERM, then sleep.
``python children.py exit CODE``: exit with CODE at once.

Each touches its marker only once it is fully set up, so the marker means ready.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

A_LONG_TIME = 600.0


def ready(marker: str) -> None:
    Path(marker).touch()
    time.sleep(A_LONG_TIME)


def main(command: str, *args: str) -> int:
    if command == "sleep":
        ready(args[0])
    elif command == "fork":
        subprocess.Popen([sys.executable, __file__, "sleep", args[1]])
        ready(args[0])
    elif command == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ready(args[0])
    elif command == "exit":
        return int(args[0])
    return 2


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
