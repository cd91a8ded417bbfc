"""Reading the console's pages in tests: their forms and CSRF tokens, and signing in (in process, and
in a browser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_TOKEN

# No request in flight, no swap or settle under way: htmx has finished with what it fetched.
HTMX_IDLE = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"


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


def sign_in_by_keyboard(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    expect(page.get_by_label("Admin token")).to_be_focused()
    page.keyboard.type(ADMIN_TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
