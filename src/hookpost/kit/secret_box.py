"""Secrets at rest: encrypted with the keys of ``HOOKPOST_SECRET_KEY`` (Fernet).

The first key encrypts; every key decrypts, so a new key can be put in front while rows
written under the old one are still read (``hookpost rotate-key`` then re-encrypts them).
One key ring per process, set where the process opens its database (storage/database.py).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# Every encrypted value starts so: it tells an encrypted row from one written before encryption.
PREFIX = "fernet:"
KEY_BYTES = 32  # a Fernet key: a signing and an encryption key, 16 bytes each


class SecretKeyError(ValueError):
    pass


class UnreadableSecret(RuntimeError):
    """A stored value none of the configured keys decrypts."""


# cryptography (8 MB of a process's RSS) is loaded with the first secret encrypted or
# decrypted, not with the settings: a worker's Celery parent and the scheduler read the
# settings, and the key's, but may never open a secret.


def new_key() -> str:
    """What ``Fernet.generate_key`` makes: 32 random bytes in url-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def _is_key(key: str) -> bool:
    """What ``Fernet(key)`` accepts: url-safe base64 of exactly 32 bytes."""
    try:
        return len(base64.urlsafe_b64decode(key)) == KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def parse_keys(value: str) -> list[str]:
    """``key1,key2,...``: each a Fernet key (32 bytes, url-safe base64); SecretKeyError if not."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise SecretKeyError("no key")
    if not all(_is_key(key) for key in keys):
        raise SecretKeyError("each key must be 32 bytes in url-safe base64 (`hookpost rotate-key --new` prints one)")
    return keys


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        self._keys = parse_keys(",".join(keys))
        self._multi: MultiFernet | None = None

    @property
    def _fernet(self) -> MultiFernet:
        if self._multi is None:
            from cryptography.fernet import Fernet, MultiFernet  # noqa: PLC0415 - see new_key

            self._multi = MultiFernet([Fernet(key) for key in self._keys])
        return self._multi

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written before encryption; the 0003 migration encrypts these
        from cryptography.fernet import InvalidToken  # noqa: PLC0415 - see new_key

        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise UnreadableSecret("a stored secret is encrypted with a key not in HOOKPOST_SECRET_KEY") from exc

    def rotate(self, stored: str) -> str:
        """``stored`` encrypted under the first key (from any key, or from clear text)."""
        return self.encrypt(self.decrypt(stored))


_box: SecretBox | None = None


def configure(keys: list[str]) -> None:
    global _box  # noqa: PLW0603 - one key ring per process, like the logging configuration
    _box = SecretBox(keys)


def box() -> SecretBox:
    if _box is None:
        raise RuntimeError("no secret key configured: the database is opened through storage.database")
    return _box
