"""The overview's chart: changes per minute over the last hour, as the geometry of an SVG
bar chart that the template draws (so every label goes through its escaping)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MINUTE = 60_000
WIDTH = 600
HEIGHT = 160
LEFT = 44  # room for the scale
BOTTOM = 20  # room for the time labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    minute: int  # since the epoch
    count: int


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: int
    total: int
    first: str  # the first and the last minute, as HH:MM in UTC
    last: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM

    @property
    def base(self) -> int:
        """The y of the time axis."""
        return self.height - self.bottom


def per_minute(counts: dict[int, int], now_ms: int, minutes: int = 60) -> Chart:
    """Bars for the ``minutes`` minutes up to the current one (oldest first), from
    counts by minute since the epoch."""
    last = now_ms // MINUTE
    span = range(last - minutes + 1, last + 1)
    values = [counts.get(m, 0) for m in span]
    peak = max(values, default=0)
    slot = (WIDTH - LEFT) / minutes
    room = HEIGHT - BOTTOM - 8
    bars = []
    for i, (minute, count) in enumerate(zip(span, values, strict=True)):
        height = room * count / peak if peak else 0.0
        if count:
            height = max(height, 1.0)
        x = LEFT + i * slot
        bars.append(Bar(round(x + 1, 2), round(HEIGHT - BOTTOM - height, 2),
                        round(slot - 2, 2), round(height, 2), minute, count))  # fmt: skip
    return Chart(bars, peak, sum(values), _clock(span[0]), _clock(span[-1]))


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")
