"""HOOKPOST_PROXY_URL and HOOKPOST_NO_PROXY taken apart, without ever showing the proxy's password.

Read by the settings (to refuse a bad value at start, in words that hold no credentials) and by
the delivery transport (delivery/proxy.py), which opens the tunnels.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

ProxyScheme = Literal["http", "socks5"]
PROXY_SCHEMES: tuple[ProxyScheme, ...] = ("http", "socks5")


@dataclass(frozen=True)
class ProxyAddress:
    """Where the proxy is and how to sign in to it; its repr and ``shown`` hold no password."""

    scheme: ProxyScheme
    host: str
    port: int
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The proxy as a log line or an attempt's error may name it: no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_proxy_url(url: str) -> ProxyAddress:
    """``http://[user:password@]host:port`` or ``socks5://[user:password@]host:port``.

    A ValueError's message never repeats the URL: it may hold the password.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError("is not a URL (expected http://host:port or socks5://host:port)") from exc
    if parts.scheme not in PROXY_SCHEMES:
        # socks5h (the proxy resolves the name) is refused on purpose: Hookpost resolves and checks it.
        raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not supported: use http:// or socks5://")
    if not parts.hostname:
        raise ValueError("has no host")
    if port is None:
        raise ValueError("needs a port, e.g. http://proxy.internal:3128")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only scheme, credentials, host and port")
    scheme: ProxyScheme = "http" if parts.scheme == "http" else "socks5"
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyAddress(scheme, parts.hostname, port, username, password)


@dataclass(frozen=True)
class NoProxy:
    """Destinations that bypass the proxy: ``*``, host names (a name covers its subdomains, as
    curl reads NO_PROXY), IP addresses and CIDRs (matched against the checked address)."""

    everything: bool = False
    domains: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> NoProxy:
        everything = False
        domains: list[str] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            value = entry.strip().lower()
            if value == "*":
                everything = True
                continue
            try:
                networks.append(ipaddress.ip_network(value.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = value.removeprefix("*.").lstrip(".").rstrip(".")
            if not name or any(char in name for char in ":/@ "):
                raise ValueError(f"{entry!r} is not a host name, domain, IP address or CIDR")
            domains.append(name)
        return cls(everything, tuple(domains), tuple(networks))

    def __bool__(self) -> bool:
        return self.everything or bool(self.domains) or bool(self.networks)

    def matches(self, host: str, address: str) -> bool:
        """Whether a connection to ``host``, resolved and checked as ``address``, goes direct."""
        if self.everything:
            return True
        name = host.strip("[]").rstrip(".").lower()
        if any(name == domain or name.endswith("." + domain) for domain in self.domains):
            return True
        if self.networks:
            ip = ipaddress.ip_address(address)
            return any(ip in network for network in self.networks)
        return False
