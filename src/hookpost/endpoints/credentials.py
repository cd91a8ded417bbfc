"""Credentials in an endpoint's URL (``https://user:password@host/hook``).

They are the receiver's secret: stored encrypted beside the URL (``endpoint.url_credentials``,
like the custom headers), never in ``endpoint.url`` nor in an attempt's URL, which keep them
masked as ``user:***`` wherever they are shown; and sent as HTTP Basic auth.

A URL sent back with its password still masked (``user:***``, as the API and the pages show
it) keeps the stored credentials of that user: saving an edit form or PUTting back what GET
answered does not lose the password. A URL without credentials drops them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from hookpost.kit.errors import InvalidInput

MASK = "***"
_AUTHORIZATION = "authorization"


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` with its credentials masked (``user:***@``), and those credentials as written
    in it (``user:password``, percent-encoded), or None when it has none."""
    parts = urlsplit(url)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        return url, None
    username = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{username}:{MASK}@{hostinfo}")), userinfo


def stored_url(url: str, current_credentials: str | None) -> tuple[str, str | None]:
    """What to store for ``url`` (given by a user): the masked URL and the credentials, the
    current ones when the URL names their user with the password masked."""
    shown, credentials = split_credentials(url)
    if credentials is None or credentials.partition(":")[2] != MASK:
        return shown, credentials
    if current_credentials is None or current_credentials.partition(":")[0] != credentials.partition(":")[0]:
        raise InvalidInput(
            ("body", "url"),
            f"the URL's password is masked ({MASK}): send it with the password itself, or without credentials",
            "masked_password",
        )
    return shown, current_credentials


def outgoing_headers(custom: Mapping[str, Any], credentials: str | None) -> dict[str, str]:
    """An endpoint's own headers for a request: its custom headers, and with credentials in
    its URL, their Basic ``Authorization`` (in place of a custom one)."""
    headers = {str(name): str(value) for name, value in custom.items()}
    if credentials is None:
        return headers
    username, _, password = credentials.partition(":")
    basic = base64.b64encode(f"{unquote(username)}:{unquote(password)}".encode()).decode("ascii")
    headers = {name: value for name, value in headers.items() if name.lower() != _AUTHORIZATION}
    headers["Authorization"] = f"Basic {basic}"
    return headers
