"""Standard Webhooks headers, with Svix's header names alongside for Svix receivers.

Two kinds of secret, told apart by their prefix as the specification has it: ``whsec_`` (an
HMAC-SHA256 key, signatures ``v1,``) and ``whsk_`` (an ed25519 private key, signatures
``v1a,``, verified by the receiver with the ``whpk_`` public key, the only part ever shown).
"""

from __future__ import annotations

import base64
import binascii
import functools
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

SYMMETRIC_PREFIX = "whsec_"
SIGNING_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"
_SEED_BYTES = 32


def _raw_public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519_key(secret: str) -> Ed25519PrivateKey:
    """The private key of a ``whsk_`` secret: base64 of the 32-byte seed followed by its 32-byte
    public key (Svix's form), or of the seed alone. ValueError says what is wrong with it."""
    try:
        raw = base64.b64decode(secret.removeprefix(SIGNING_KEY_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a whsk_ key is base64") from exc
    if len(raw) not in (_SEED_BYTES, 2 * _SEED_BYTES):
        raise ValueError(f"a whsk_ key is 32 or 64 bytes of ed25519 key (seed, then public key), not {len(raw)}")
    key = Ed25519PrivateKey.from_private_bytes(raw[:_SEED_BYTES])
    if len(raw) > _SEED_BYTES and raw[_SEED_BYTES:] != _raw_public_key(key):
        raise ValueError("the whsk_ key's last 32 bytes are not the public key of its first 32")
    return key


# Parsing a key (deriving its public key, checking it) costs more than signing with it: a worker
# keeps the keys of the endpoints it sends to, as it holds their decrypted secrets anyway.
_signing_key = functools.lru_cache(maxsize=1024)(ed25519_key)


def generate_ed25519_secret() -> str:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    return SIGNING_KEY_PREFIX + base64.b64encode(seed + _raw_public_key(key)).decode()


def shown_key(secret: str) -> str:
    """What may leave Hookpost of a secret: a ``whsec_`` one as it is (the receiver needs it),
    of a ``whsk_`` one its ``whpk_`` public key only."""
    if not secret.startswith(SIGNING_KEY_PREFIX):
        return secret
    return PUBLIC_KEY_PREFIX + base64.b64encode(_raw_public_key(ed25519_key(secret))).decode()


def _signature(secret: str, msg_id: str, timestamp: datetime, body: str) -> str:
    if secret.startswith(SIGNING_KEY_PREFIX):
        # The same content as v1's HMAC: {id}.{unix seconds}.{body}, signed as it is (pure ed25519).
        content = f"{msg_id}.{int(timestamp.timestamp())}.{body}".encode()
        return "v1a," + base64.b64encode(_signing_key(secret).sign(content)).decode()
    return Webhook(secret).sign(msg_id, timestamp, body)


def webhook_headers(msg_id: str, timestamp: datetime, body: str, secrets: list[str]) -> dict[str, str]:
    """Sign with every active secret: after a rotation the receiver may still hold the old one."""
    signature = " ".join(_signature(secret, msg_id, timestamp, body) for secret in secrets)
    unix = str(int(timestamp.timestamp()))
    headers = {"content-type": "application/json"}
    for prefix in ("webhook", "svix"):
        headers[f"{prefix}-id"] = msg_id
        headers[f"{prefix}-timestamp"] = unix
        headers[f"{prefix}-signature"] = signature
    return headers
