"""``python -m hookpost``: the same as the ``hookpost`` command."""

from hookpost.cli import app

app(prog_name="hookpost")
