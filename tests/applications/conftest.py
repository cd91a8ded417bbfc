# The in-memory API fixtures of tests/api (factories; the settings are tests/conftest.py's).
from tests.api.conftest import app_id, make_app, make_endpoint, send

__all__ = ["app_id", "make_app", "make_endpoint", "send"]
