"""Secrets at rest: encrypted with the keys of ``HOOKPOST_SECRET_KEY`` (Fernet).

The first key encrypts; every key decrypts, so a new key can be put in front while rows
written under the old one are still read (``hookpost rotate-key`` then re-encrypts them).
One key ring per process, set where the process opens its database (storage/database.py).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Every encrypted value starts so: it tells an encrypted row from one written before encryption.
PREFIX = "fernet:"


class SecretKeyError(ValueError):
    pass


class UnreadableSecret(RuntimeError):
    """A stored value none of the configured keys decrypts."""


def new_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(value: str) -> list[str]:
    """``key1,key2,...``: each a Fernet key (32 bytes, url-safe base64); SecretKeyError if not."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise SecretKeyError("no key")
    for key in keys:
        try:
            Fernet(key)
        except ValueError as exc:
            raise SecretKeyError(
                "each key must be 32 bytes in url-safe base64 (`hookpost rotate-key --new` prints one)"
            ) from exc
    return keys


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written before encryption; the 0003 migration encrypts these
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
