"""Ids and the bounds a list by time takes from them (kit/ids.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hookpost.kit.ids import created_ms, first_id_at, ids_made_after, ids_made_before, new_id


def test_ids_sort_by_their_time_and_hold_it() -> None:
    made = new_id("msg")
    assert first_id_at("msg", created_ms(made)) <= made < first_id_at("msg", created_ms(made) + 1)
    assert first_id_at("msg", 1_000) < first_id_at("msg", 2_000)


@pytest.mark.parametrize(
    "at",
    [datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)],
)
def test_a_time_outside_what_an_id_holds_bounds_at_the_nearest_it_does(at: datetime) -> None:
    """The lists take these bounds from a client's before/after: a time before 1970 once sent
    the base62 encoder into an endless loop that grew until the machine's memory ran out."""
    before, after = ids_made_before("msg", at), ids_made_after("msg", at)

    assert len(before) == len(after) == len(new_id("msg"))
    if at.year < 1970:
        assert before == after == first_id_at("msg", 0)
    else:
        assert before > after > new_id("msg")
