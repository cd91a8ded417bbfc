"""Svix's environment export and import: the event type catalogue, and the settings Hookpost has."""
