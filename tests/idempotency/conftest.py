# The in-memory API fixtures of tests/api (a migrated SQLite copy per test, factories).
from tests.api.conftest import app_id, make_app, make_endpoint, migrated_template, send, settings

__all__ = ["app_id", "make_app", "make_endpoint", "migrated_template", "send", "settings"]
