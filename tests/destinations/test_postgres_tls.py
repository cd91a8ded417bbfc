"""A postgres destination's TLS: the socket connects to the address the host was checked to be,
yet the server's certificate is verified for the host's name (verify-full), against the
destination's ``sslRootCert``. A real TLS server on loopback stands in for PostgreSQL's."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hookpost.delivery.sinks.postgres import tls_context

NAME = "db.queues.test"


def certificate(folder: Path) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem", pem.decode()


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, str]]:
    cert, key, pem = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], pem
    finally:
        server.close()


async def handshake(port: int, context: ssl.SSLContext | bool) -> None:
    assert isinstance(context, ssl.SSLContext)
    # As asyncpg does: the connection's host is the checked address, and it names that address as the server.
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    writer.close()


async def test_the_certificate_is_verified_for_the_host_name_not_the_address(tls_server: tuple[int, str]) -> None:
    port, pem = tls_server
    await handshake(port, tls_context(f"postgres://u@{NAME}:{port}/x?sslmode=verify-full", NAME, pem))

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        await handshake(port, tls_context(f"postgres://u@other.queues.test:{port}/x", "other.queues.test", pem))


async def test_an_unknown_authority_is_refused(tls_server: tuple[int, str]) -> None:
    port, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(port, tls_context(f"postgres://u@{NAME}:{port}/x?sslmode=verify-full", NAME, None))


def test_no_tls_unless_asked() -> None:
    assert tls_context(f"postgres://u@{NAME}/x", NAME, None) is False
    assert tls_context(f"postgres://u@{NAME}/x?sslmode=disable", NAME, None) is False
