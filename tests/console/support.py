"""Reading the console's pages in tests: their forms and CSRF tokens, and signing in."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("method", "get").lower(), values.get("action", "")))
        elif tag in ("input", "textarea") and self.forms and "name" in values:
            self.forms[-1].fields.setdefault(values["name"], values.get("value", ""))


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def csrf_token_of(html: str) -> str:
    for form in forms_of(html):
        if "csrf_token" in form.fields:
            return form.fields["csrf_token"]
    raise AssertionError("no form with a CSRF token on this page")


def sign_in(client: TestClient | httpx.Client, token: str = ADMIN_TOKEN) -> httpx.Response:
    page = client.get("/console/sign-in")
    return client.post(
        "/console/sign-in",
        data={"token": token, "csrf_token": csrf_token_of(page.text), "next": "/console/"},
        follow_redirects=False,
    )


def assert_refuses_framing_and_inline_code(page: httpx.Response, path: str) -> None:
    """The headers every page, the console's and the portal's by default, is sent with."""
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp, path
    assert "script-src 'self'" in csp, path
    assert "unsafe-inline" not in csp, path
    assert page.headers["x-frame-options"] == "DENY", path
    assert page.headers["cache-control"] == "no-store", path
