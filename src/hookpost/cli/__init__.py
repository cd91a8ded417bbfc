"""The ``hookpost`` command (``hookpost.cli:app``)."""

from hookpost.cli.commands import app

__all__ = ["app"]
