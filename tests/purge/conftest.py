"""The in-memory API fixtures of tests/api (test_api.py), and the running Hookpost of
tests/test_svix_client.py for the client tests (test_with_the_client.py)."""

from tests.api.conftest import app_id, make_app, make_endpoint, send
from tests.test_svix_client import hookpost, hooks, subscriber, svix

__all__ = [
    "app_id",
    "hookpost",
    "hooks",
    "make_app",
    "make_endpoint",
    "send",
    "subscriber",
    "svix",
]
