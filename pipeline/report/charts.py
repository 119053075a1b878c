"""Geometry of the report's inline SVG charts, computed server-side (the HTML carries no JavaScript).

Functions return plain data (rectangles, labels); the template draws them, so every label goes
through Jinja's autoescaping.
"""

from __future__ import annotations

from dataclasses import dataclass

COLORS = {
    "valid": "#2f855a",
    "rejected": "#c53030",
    "imported": "#2b6cb0",
    "skipped": "#718096",
    "failed": "#dd6b20",
    "pending": "#cbd5e0",
    "bar": "#4a5568",
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: float
    width: float
    color: str


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars: one row per item, label on the left, value after the bar."""

    bars: list[Bar]
    width: int
    height: int
    label_width: int
    bar_height: int
    title: str
    more: int  # items not drawn


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    value: int
    x: float
    width: float
    color: str
    share: float


@dataclass(frozen=True)
class StackedBar:
    """One bar split into segments (share of the source rows per outcome)."""

    segments: list[Segment]
    width: int
    height: int
    total: int


def bar_chart(items: list[tuple[str, int]], *, title: str, limit: int = 12, width: int = 500,
              color: str = COLORS["bar"]) -> BarChart:
    """Bars for the first ``limit`` of ``items`` (already sorted), scaled to the largest value.

    The label column is as wide as the longest label needs (about 7 px a character at 12 px),
    within bounds; longer labels are clipped with an ellipsis (the tables carry them in full).
    """
    shown = items[:limit]
    bar_height, gap, char_px = 18, 8, 6.8
    longest = max((len(label) for label, _ in shown), default=0)
    needed, cap = longest * char_px + 12, width * 0.5
    label_width = int(min(max(needed, 90), cap) + 0.5)
    max_chars = longest if needed <= cap else int((cap - 12) / char_px)
    area = width - label_width - 60  # room for the value after the bar
    top = max((v for _, v in shown), default=0) or 1
    bars = [
        Bar(label=_clip(label, max_chars), value=value, y=i * (bar_height + gap),
            width=max(value / top * area, 1.0 if value else 0.0), color=color)
        for i, (label, value) in enumerate(shown)
    ]
    height = max(len(bars) * (bar_height + gap) - gap, 0)
    return BarChart(bars=bars, width=width, height=height, label_width=label_width,
                    bar_height=bar_height, title=title, more=max(len(items) - len(shown), 0))


def stacked_bar(parts: list[tuple[str, str, int]], *, width: int = 720, height: int = 28) -> StackedBar:
    """``parts`` is (key, label, value); zero values are dropped; the widths add up to ``width``."""
    total = sum(v for _, _, v in parts)
    segments: list[Segment] = []
    x = 0.0
    for key, label, value in parts:
        if value <= 0:
            continue
        w = value / total * width
        segments.append(Segment(key=key, label=label, value=value, x=x, width=w,
                                color=COLORS.get(key, COLORS["bar"]), share=value / total))
        x += w
    return StackedBar(segments=segments, width=width, height=height, total=total)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
