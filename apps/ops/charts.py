"""Charts drawn on the server as SVG (`templates/ops/_chart.html` renders what these return).

No script and no inline style, so they live inside the Content-Security-Policy: geometry is
computed here, colours come from the stylesheet by series class (`series-0`, `series-1`…).
Each chart has a title and a description for screen readers, and the same numbers as a table.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 40
MAX_X_LABELS = 8
TICKS = 4


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    series: int
    title: str


@dataclass(frozen=True)
class Line:
    series: int
    points: str
    dots: list[tuple[str, str, str]]  # x, y, title


@dataclass(frozen=True)
class Tick:
    position: str
    label: str


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    unit: str
    names: list[str]
    labels: list[str]
    rows: list[list[str]]  # the table: one row per bucket, one cell per series
    bars: list[Bar]
    lines: list[Line]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def left(self) -> int:
        return LEFT

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def baseline(self) -> int:
        return self.height - BOTTOM

    @property
    def legend(self) -> list[tuple[int, str]]:
        return list(enumerate(self.names))

    @property
    def table(self) -> list[tuple[str, list[str]]]:
        return list(zip(self.labels, self.rows, strict=True))


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing): the
    top of a tidy axis."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


def _number(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.2f}"
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "s":
        return f"{value:,.1f} s"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _frame(
    labels: Sequence[str], top_value: float, unit: str
) -> tuple[float, float, list[Tick], list[Tick]]:
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(labels), 1)
    scale = plot_height / top_value
    y_ticks = [
        Tick(
            f"{HEIGHT - BOTTOM - i * plot_height / TICKS:.1f}", _number(top_value * i / TICKS, unit)
        )
        for i in range(TICKS + 1)
    ]
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    x_ticks = [
        Tick(f"{LEFT + (i + 0.5) * slot:.1f}", label)
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return slot, scale, y_ticks, x_ticks


def _table(series: Sequence[Sequence[float | None]], count: int, unit: str) -> list[list[str]]:
    return [
        ["-" if values[i] is None else _number(values[i] or 0, unit) for values in series]
        for i in range(count)
    ]


def bars(
    *,
    id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    unit: str = "",
    stacked: bool = True,
) -> Chart:
    """Bars per bucket: one stacked column of all series, or the series side by side."""
    columns = [sum(values[i] for _, values in series) for i in range(len(labels))]
    tallest = max(columns if stacked else [v for _, vs in series for v in vs], default=0)
    top_value = nice_ceiling(tallest)
    slot, scale, y_ticks, x_ticks = _frame(labels, top_value, unit)
    drawn: list[Bar] = []
    gap = slot * 0.15
    for i, label in enumerate(labels):
        base = 0.0
        for index, (name, values) in enumerate(series):
            value = values[i]
            if not value:
                continue
            height = value * scale
            if stacked:
                x, width = LEFT + i * slot + gap, slot - 2 * gap
                y = HEIGHT - BOTTOM - base - height
                base += height
            else:
                width = (slot - 2 * gap) / len(series)
                x = LEFT + i * slot + gap + index * width
                y = HEIGHT - BOTTOM - height
            drawn.append(
                Bar(
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{width:.1f}",
                    f"{height:.1f}",
                    index,
                    f"{label}: {name} {_number(value, unit)}",
                )
            )
    return Chart(
        id=id,
        title=title,
        description=description,
        unit=unit,
        names=[name for name, _ in series],
        labels=list(labels),
        rows=_table([values for _, values in series], len(labels), unit),
        bars=drawn,
        lines=[],
        y_ticks=y_ticks,
        x_ticks=x_ticks,
    )


def lines(
    *,
    id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    unit: str = "",
    top: float | None = None,
) -> Chart:
    """One line per series; a bucket without a value (None) breaks no line, it is skipped."""
    known = [v for _, values in series for v in values if v is not None]
    top_value = top if top is not None else nice_ceiling(max(known, default=0))
    slot, scale, y_ticks, x_ticks = _frame(labels, top_value, unit)
    drawn = []
    for index, (name, values) in enumerate(series):
        dots = [
            (
                f"{LEFT + (i + 0.5) * slot:.1f}",
                f"{HEIGHT - BOTTOM - value * scale:.1f}",
                f"{labels[i]}: {name} {_number(value, unit)}",
            )
            for i, value in enumerate(values)
            if value is not None
        ]
        drawn.append(Line(index, " ".join(f"{x},{y}" for x, y, _ in dots), dots))
    return Chart(
        id=id,
        title=title,
        description=description,
        unit=unit,
        names=[name for name, _ in series],
        labels=list(labels),
        rows=_table([values for _, values in series], len(labels), unit),
        bars=[],
        lines=drawn,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
    )
