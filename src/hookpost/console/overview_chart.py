"""The overview's attempts-per-minute chart, laid out here for the template to draw as SVG: its
bars, a y axis with a scale of round numbers, and the x axis's times (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hookpost.attempts.service import AttemptRates
from hookpost.kit.time import as_utc

# The drawing's own units (its viewBox): the plot, and the margins for the axes' text.
PLOT_WIDTH = 300
PLOT_HEIGHT = 100
LEFT = 44  # the y axis's numbers and its label
TOP = 8
BOTTOM = 30  # the x axis's times and its label
RIGHT = 16  # half a time label past the plot's right edge
WIDTH = LEFT + PLOT_WIDTH + RIGHT
HEIGHT = TOP + PLOT_HEIGHT + BOTTOM
TICKS = 4  # at most this many steps up the y axis
TIME_EVERY = 5  # minutes between the x axis's times


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    start: str  # the minute's start, HH:MM


@dataclass(frozen=True)
class Tick:
    at: float  # the position along its axis, in the drawing's units
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    left: int = LEFT
    top: int = TOP
    plot_width: int = PLOT_WIDTH
    plot_height: int = PLOT_HEIGHT
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.left + self.plot_width


def nice_step(peak: int, ticks: int = TICKS) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... whose ``ticks`` steps reach ``peak`` (at least 1)."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude * ticks >= peak:
                return factor * magnitude
        magnitude *= 10


def _clock(value: datetime) -> str:
    return as_utc(value).strftime("%H:%M")


def attempts_chart(rates: AttemptRates, now: datetime) -> Chart:
    """Bars for ``rates.per_minute`` (oldest first, the last ending at ``now``) on a scale from 0 to
    a round number at or above the busiest minute, with a time every ``TIME_EVERY`` minutes."""
    counts = list(rates.per_minute)
    step = nice_step(max(counts, default=0))
    steps = max(1, -(-max(counts, default=0) // step))  # ceiling: the scale's top is the first tick over the peak
    top = step * steps
    start = as_utc(now) - timedelta(minutes=rates.minutes)
    slot = PLOT_WIDTH / max(1, len(counts))
    bars = []
    for index, count in enumerate(counts):
        height = round(count / top * PLOT_HEIGHT, 1)
        minute = _clock(start + timedelta(minutes=index))
        bars.append(Bar(LEFT + index * slot + 1, TOP + PLOT_HEIGHT - height, slot - 2, height, count, minute))
    y_ticks = [Tick(TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / top, str(value)) for value in range(0, top + 1, step)]
    x_ticks = [
        Tick(LEFT + index * slot, _clock(start + timedelta(minutes=index)))
        for index in range(0, len(counts) + 1, TIME_EVERY)
    ]
    return Chart(bars, y_ticks, x_ticks)
