"""Prefixed, time-ordered ids (``app_…``, ``ep_…``, ``msg_…``, ``atmpt_…``) as Svix uses.

48 bits of milliseconds then 80 random bits, in fixed-width base62: ids sort by
creation time, so they double as pagination cursors.
"""

import re
import secrets
import time
from datetime import datetime
from typing import Final, Literal, get_args

from hookpost.kit.time import as_utc

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
    if not 0 <= number < 1 << 128:
        raise ValueError(f"{number} is not a 128-bit id")
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


_MAX_MS = (1 << 48) - 1  # the last millisecond an id can hold (in the year 10889)


def first_id_at(prefix: IdPrefix, unix_ms: int) -> str:
    """The smallest id ``new_id`` can make at this time: a bound for a range scan by time on the key.
    A time outside what an id holds (before 1970, after 10889) is taken as the nearest it does."""
    return f"{prefix}_{_base62(min(max(unix_ms, 0), _MAX_MS) << 80)}"


# How far an id's time may run past its row's ``created_at``: a row takes ``now`` a moment
# before its id is made (a batch of messages takes one ``now``, then makes their ids after a
# lookup or two). Both come from one clock in one process, so the id is never earlier than
# ``created_at``'s millisecond; the margin on that side is for a clock stepped back between the two.
ID_TIME_MARGIN_MS = 60_000


def _unix_ms(at: datetime) -> int:
    return int(as_utc(at).timestamp() * 1000)


def ids_made_before(prefix: IdPrefix, at: datetime) -> str:
    """An exclusive upper bound on the ids of rows created before ``at``: a list bounded by time
    adds ``id < this`` to its ``created_at`` condition, so its scan of the key (or of an index
    ending in the id) starts near ``at`` rather than at the newest row, and PostgreSQL prunes
    the partitions of later weeks."""
    return first_id_at(prefix, _unix_ms(at) + ID_TIME_MARGIN_MS)


def ids_made_after(prefix: IdPrefix, at: datetime) -> str:
    """An inclusive lower bound on the ids of rows created after ``at`` (see ``ids_made_before``)."""
    return first_id_at(prefix, _unix_ms(at) - ID_TIME_MARGIN_MS)
