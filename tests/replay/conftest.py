"""The running Hookpost of tests/test_svix_client.py (server, worker, receiver), for the
client tests here: each module in this folder gets its own."""

from tests.test_svix_client import hookpost, hooks, subscriber, svix

__all__ = ["hookpost", "hooks", "subscriber", "svix"]
