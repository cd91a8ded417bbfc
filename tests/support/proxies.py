"""Real outbound proxies on loopback, run by the test: tinyproxy (HTTP CONNECT, Debian's package)
and pproxy (SOCKS5, a dev dependency). Each records what it was asked to connect to in its own log.

tinyproxy comes from .ci/run. Without it the tests that need it skip, saying so; under CI=true
they fail instead.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.eventually import eventually
from tests.support.processes import free_port

STARTUP_DEADLINE = 30.0
# pproxy installs uvloop's policy when uvloop is importable, then asks for a loop the old way,
# which uvloop refuses; without uvloop it runs on asyncio's own loop.
PPROXY = "import sys; sys.modules['uvloop'] = None; from pproxy.server import main; main(sys.argv[1:])"


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_accepting(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def accepting() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"proxy exited with {process.returncode}: {log.read_text(errors='replace')}")
        return _accepting(port)

    eventually(accepting, f"the proxy listening on {port}", timeout=STARTUP_DEADLINE)


@dataclass
class RunningProxy:
    url: str  # what HOOKPOST_PROXY_URL is set to, credentials included
    log: Path
    target_pattern: re.Pattern[str]

    def targets(self) -> list[str]:
        """Every ``host:port`` the proxy was asked to connect to, in order."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return self.target_pattern.findall(text)


def tinyproxy_binary() -> str:
    found = shutil.which("tinyproxy") or ("/usr/bin/tinyproxy" if os.access("/usr/bin/tinyproxy", os.X_OK) else None)
    if found:
        return found
    reason = "tinyproxy is not installed (.ci/run installs it with apt-get)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def tinyproxy(
    folder: Path, *, credentials: tuple[str, str] | None = None, port: int | None = None
) -> Iterator[RunningProxy]:
    binary = tinyproxy_binary()
    port = port or free_port()
    log = folder / f"tinyproxy-{port}.log"
    config = folder / f"tinyproxy-{port}.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        f'LogFile "{log}"',
        "LogLevel Connect",
        "Allow 127.0.0.1",
    ]
    if credentials is not None:
        lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
    config.write_text("\n".join(lines) + "\n")  # no ConnectPort line: CONNECT to any port
    process = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_accepting(port, process, log)
        userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        yield RunningProxy(
            f"http://{userinfo}127.0.0.1:{port}",
            log,
            re.compile(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP"),
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def socks5_proxy(folder: Path, *, credentials: tuple[str, str] | None = None) -> Iterator[RunningProxy]:
    port = free_port()
    log = folder / f"pproxy-{port}.log"
    auth = f"#{credentials[0]}:{credentials[1]}" if credentials else ""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", PPROXY, "-l", f"socks5://127.0.0.1:{port}{auth}", "-v"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        _wait_accepting(port, process, log)
        userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        yield RunningProxy(f"socks5://{userinfo}127.0.0.1:{port}", log, re.compile(r"^socks5 \S+ -> (\S+)$", re.M))
    finally:
        process.terminate()
        process.wait(timeout=10)


def self_signed_certificate(folder: Path, hostname: str) -> tuple[Path, Path]:
    """A certificate for ``hostname`` only (no IP address in it), and its key: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{hostname}.crt", folder / f"{hostname}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
