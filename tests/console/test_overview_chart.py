"""The overview chart's axes: a scale of round numbers over the busiest minute, and the times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from hookpost.attempts.service import AttemptRates
from hookpost.console.overview_chart import PLOT_HEIGHT, attempts_chart, nice_step

NOW = datetime(2026, 12, 7, 14, 30, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("peak", "labels"),
    [
        (0, ["0", "1"]),
        (3, ["0", "1", "2", "3"]),
        (7, ["0", "2", "4", "6", "8"]),
        (41, ["0", "20", "40", "60"]),
        (100, ["0", "50", "100"]),
        (1234, ["0", "500", "1000", "1500"]),
    ],
)
def test_the_y_axis_counts_in_round_steps_up_to_the_busiest_minute_or_just_over(peak: int, labels: list[str]) -> None:
    chart = attempts_chart(AttemptRates(minutes=15, per_minute=[0] * 14 + [peak], failed=0), NOW)
    assert [tick.label for tick in chart.y_ticks] == labels
    assert chart.y_ticks[0].at == chart.bottom  # 0 on the x axis
    assert chart.y_ticks[-1].at == chart.top
    busiest = chart.bars[-1]
    assert busiest.y + busiest.height == chart.bottom
    assert busiest.height == round(peak / int(labels[-1]) * PLOT_HEIGHT, 1)


def test_nice_steps() -> None:
    assert [nice_step(peak) for peak in (1, 4, 5, 8, 9, 20, 21, 400, 401)] == [1, 1, 2, 2, 5, 5, 10, 100, 200]


def test_the_x_axis_shows_the_times_every_five_minutes_ending_now() -> None:
    chart = attempts_chart(AttemptRates(minutes=15, per_minute=list(range(15)), failed=0), NOW)
    assert [tick.label for tick in chart.x_ticks] == ["14:15", "14:20", "14:25", "14:30"]
    assert chart.x_ticks[0].at == chart.left
    assert chart.x_ticks[-1].at == chart.right
    assert (chart.bars[0].start, chart.bars[-1].start) == ("14:15", "14:29")
    assert all(chart.left < bar.x and bar.x + bar.width < chart.right for bar in chart.bars)


def test_the_overview_draws_the_axes(signed_in: TestClient) -> None:
    page = signed_in.get("/console/").text
    svg = page.split('<svg class="chart"', 1)[1].split("</svg>", 1)[0]
    assert 'id="y-axis"' in svg
    assert ">attempts / min</text>" in svg
    assert ">time (UTC)</text>" in svg
    assert svg.count("<rect") == 15
    assert ">0</text>" in svg
