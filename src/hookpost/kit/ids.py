"""Prefixed, time-ordered ids (``app_…``, ``ep_…``, ``msg_…``, ``atmpt_…``) as Svix uses.

48 bits of milliseconds then 80 random bits, in fixed-width base62: ids sort by
creation time, so they double as pagination cursors.
"""

import re
import secrets
import time
from typing import Final, Literal, get_args

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_WIDTH = 22  # 62**22 > 2**128

# Every prefix an id is made with (typed, so a new one is added here or mypy says so).
IdPrefix = Literal["app", "ep", "msg", "atmpt", "dlv", "qtask", "tok", "dest", "datmpt"]
ID_PREFIXES: tuple[str, ...] = get_args(IdPrefix)


def _id_shape(*prefixes: str) -> str:
    return rf"(?:{'|'.join(prefixes)})_[0-9A-Za-z]{{{_WIDTH}}}"


# What ``new_id`` makes: a uid of this shape could pass for an id (kit/validation.py refuses it).
ID_PATTERN: Final = rf"^{_id_shape(*ID_PREFIXES)}$"


def _base62(number: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(_WIDTH, "0")


def new_id(prefix: IdPrefix) -> str:
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base62((millis << 80) | secrets.randbits(80))}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_")


def looks_like_id(value: str, prefix: str) -> bool:
    """Whether ``value`` has the shape of an id ``new_id(prefix)`` makes: a path value of this shape
    names a row by id and never by uid, so that a uid cannot stand in for another row's id."""
    return re.fullmatch(_id_shape(prefix), value) is not None


def created_ms(value: str) -> int:
    """The creation time embedded in an id made by ``new_id``, in Unix milliseconds."""
    number = 0
    for char in value.rpartition("_")[2]:
        number = number * 62 + _ALPHABET.index(char)
    return number >> 80


def first_id_at(prefix: IdPrefix, unix_ms: int) -> str:
    """The smallest id ``new_id`` can make at this time: a bound for a range scan by time on the key."""
    return f"{prefix}_{_base62(unix_ms << 80)}"
