"""What the ``hookpost`` command prints: its answers on stdout, its complaints on stderr."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"hookpost: {message}", style="bold red", markup=False, soft_wrap=True)
    raise typer.Exit(code)
