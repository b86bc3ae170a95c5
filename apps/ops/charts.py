"""Charts drawn on the server as SVG, with a legend and the same numbers as a table.

No script and no inline style, so they live inside the Content-Security-Policy: geometry is
computed here, colours come from the stylesheet by series class (`series-0`, `series-1`…).
Each chart has a title and a description for screen readers. The markup is written here
rather than by a template: a 90-day chart has thousands of elements, which Python joins in a
millisecond and the template engine in a tenth of a second.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 40
MAX_X_LABELS = 8


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

    def __str__(self) -> SafeString:
        """The whole figure, ready for a page (`{{ chart }}`)."""
        return mark_safe("".join(self._figure()))  # noqa: S308 (every text below is escaped)

    def _figure(self) -> Iterator[str]:
        title, description = escape(self.title), escape(self.description)
        yield f'<figure class="chart" id="{self.id}">'
        yield (
            f'<svg class="chart-svg" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-labelledby="{self.id}-title {self.id}-desc" focusable="false">'
            f'<title id="{self.id}-title">{title}</title>'
            f'<desc id="{self.id}-desc">{description}</desc><g class="chart-axis">'
        )
        for tick in self.y_ticks:
            yield (
                f'<line x1="{self.left}" x2="{self.right}" y1="{tick.position}" '
                f'y2="{tick.position}"></line><text x="{self.left - 6}" y="{tick.position}" '
                f'text-anchor="end" dominant-baseline="middle">{escape(tick.label)}</text>'
            )
        for tick in self.x_ticks:
            yield (
                f'<text x="{tick.position}" y="{self.baseline + 18}" '
                f'text-anchor="middle">{escape(tick.label)}</text>'
            )
        yield "</g>"
        for bar in self.bars:
            yield (
                f'<rect class="series-{bar.series}" x="{bar.x}" y="{bar.y}" width="{bar.width}" '
                f'height="{bar.height}"><title>{escape(bar.title)}</title></rect>'
            )
        for line in self.lines:
            yield (
                f'<polyline class="chart-line series-{line.series}" '
                f'points="{line.points}"></polyline>'
            )
            for x, y, dot in line.dots:
                yield (
                    f'<circle class="series-{line.series}" cx="{x}" cy="{y}" r="3">'
                    f"<title>{escape(dot)}</title></circle>"
                )
        yield f'</svg><figcaption><strong>{title}</strong><ul class="chart-legend">'
        for index, name in enumerate(self.names):
            yield (
                f'<li><span class="swatch series-{index}" aria-hidden="true"></span>'
                f"{escape(name)}</li>"
            )
        yield (
            f'</ul></figcaption><details class="chart-table"><summary>{title}: the figures as a '
            'table</summary><div class="table-wrap"><table><thead><tr>'
            '<th scope="col">Period (UTC)</th>'
        )
        yield "".join(f'<th scope="col" class="num">{escape(name)}</th>' for name in self.names)
        yield "</tr></thead><tbody>"
        for label, cells in zip(self.labels, self.rows, strict=True):
            yield f'<tr><th scope="row">{escape(label)}</th>'
            yield "".join(f'<td class="num">{escape(cell)}</td>' for cell in cells)
            yield "</tr>"
        yield "</tbody></table></div></details></figure>"


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
    # 10: 0, 2, 4…; 5: 0, 1, 2…; 20: 0, 5, 10…: round steps for every tidy top.
    ticks = 4 if f"{top_value:e}".startswith("2") else 5
    y_ticks = [
        Tick(
            f"{HEIGHT - BOTTOM - i * plot_height / ticks:.1f}", _number(top_value * i / ticks, unit)
        )
        for i in range(ticks + 1)
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
    # Counts never need a tick between two whole numbers.
    top_value = nice_ceiling(tallest if unit else max(tallest, 5))
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
