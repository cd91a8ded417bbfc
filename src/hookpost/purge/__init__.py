"""Expunging an application's message payloads: some by id at once, or all in the background."""
