"""Sending an endpoint what it missed (replay-missing) or again (bulk-replay), in the background."""
