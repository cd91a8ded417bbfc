"""A self-signed TLS certificate for nginx's first start (compose.yaml's ``certificate`` service).

Made only where there is none yet: a certificate put there by hand (a real one) is never
replaced, and neither is one made here on an earlier start, so a browser's exception for it
holds across restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The names nginx's configuration reads (deploy/nginx/hookpost.conf).
CERTIFICATE_FILE = "fullchain.pem"
KEY_FILE = "privkey.pem"
DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
# Browsers and Apple's platforms refuse a server certificate valid for longer than 825 days.
VALIDITY = datetime.timedelta(days=825)


@dataclass(frozen=True)
class CertificateFiles:
    certificate: Path
    key: Path
    made: bool  # False: both files were there already and are left as they were


def ensure_self_signed(folder: Path, hostnames: tuple[str, ...] = DEFAULT_HOSTNAMES) -> CertificateFiles:
    """``folder``'s certificate and key, both made (self-signed, for ``hostnames``) unless both exist."""
    certificate, key = folder / CERTIFICATE_FILE, folder / KEY_FILE
    if certificate.exists() and key.exists():
        return CertificateFiles(certificate, key, made=False)
    folder.mkdir(parents=True, exist_ok=True)
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The key is written first and readable by its owner only; the certificate, written last,
    # marks the pair complete.
    _write(key, key_pem, mode=0o600)
    _write(certificate, _certificate(private_key, hostnames).public_bytes(serialization.Encoding.PEM), mode=0o644)
    return CertificateFiles(certificate, key, made=True)


def _certificate(private_key: ec.EllipticCurvePrivateKey, hostnames: tuple[str, ...]) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hookpost self-signed"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    public_key = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a client whose clock is a little behind
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_general_name(host) for host in hostnames]), critical=False)
        # Its own issuer: a client that trusts this file verifies the server against it.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(private_key, hashes.SHA256())
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` created with ``mode`` (never wider for a moment), replacing it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    partial.replace(path)
