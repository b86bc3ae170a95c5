"""The SVG charts: tidy axes, bars and lines where the numbers put them, text escaped, and the
same numbers as a table."""

import pytest

from apps.ops import charts


@pytest.mark.parametrize(
    ("tallest", "top"), [(0, 1), (0.3, 0.5), (1, 1), (7, 10), (10, 10), (11, 20), (260, 500)]
)
def test_the_axis_tops_out_at_a_round_number(tallest, top):
    assert charts.nice_ceiling(tallest) == pytest.approx(top)


def test_stacked_bars_are_as_tall_as_their_share_of_the_axis():
    chart = charts.bars(
        id="c", title="Videos", description="d", labels=["1 Mar", "2 Mar"],
        series=[("succeeded", [6, 0]), ("failed", [2, 10])],
    )  # fmt: skip

    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "4", "6", "8", "10"]
    heights = {bar.title: float(bar.height) for bar in chart.bars}
    plot = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert heights == {
        "1 Mar: succeeded 6": pytest.approx(plot * 0.6),
        "1 Mar: failed 2": pytest.approx(plot * 0.2),
        "2 Mar: failed 10": pytest.approx(plot),
    }
    # The second bar of a stack starts where the first ends.
    first, second = chart.bars[0], chart.bars[1]
    assert float(second.y) + float(second.height) == pytest.approx(float(first.y))


def test_lines_skip_the_buckets_without_a_value():
    chart = charts.lines(
        id="c", title="Rate", description="d", labels=["a", "b", "c"],
        series=[("rate", [50.0, None, 100.0])], unit="%", top=100,
    )  # fmt: skip

    [line] = chart.lines
    assert [title for _, _, title in line.dots] == ["a: rate 50%", "c: rate 100%"]
    assert chart.rows == [["50%"], ["-"], ["100%"]]


def test_the_markup_escapes_every_text_and_names_the_chart_for_screen_readers():
    chart = charts.bars(
        id="c", title="By <provider>", description="Who & how many", labels=["<b>"],
        series=[("<script>alert(1)</script>", [3])],
    )  # fmt: skip

    html = str(chart)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'role="img" aria-labelledby="c-title c-desc"' in html
    assert '<title id="c-title">By &lt;provider&gt;</title>' in html
    assert '<desc id="c-desc">Who &amp; how many</desc>' in html
    assert '<th scope="row">&lt;b&gt;</th><td class="num">3</td>' in html
    assert "style=" not in html
