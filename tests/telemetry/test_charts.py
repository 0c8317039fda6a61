from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from telemetry.charts import Series, line_chart, sparkline

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML or it raises


def test_line_chart_is_valid_svg_without_inline_styles() -> None:
    points = [(T0 + timedelta(minutes=i), 100.0 + i) for i in range(5)]
    svg = line_chart([Series("Odometer", points)], title="Odometer", unit="km")
    root = parse(svg)
    assert root.tag.endswith("svg")
    assert "style=" not in svg
    assert "<script" not in svg
    paths = [el for el in root.iter() if el.tag.endswith("path")]
    assert len(paths) == 1
    assert paths[0].get("d").startswith("M")
    assert paths[0].get("d").count("L") == 4


def test_it_escapes_text() -> None:
    svg = line_chart(
        [Series('<b>"x"</b>', [(T0, 1.0), (T0 + timedelta(minutes=1), 2.0)], css_class='a"b')],
        title="<script>alert(1)</script>",
    )
    parse(svg)
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_gaps_break_the_line() -> None:
    points = [(T0, 1.0), (T0 + timedelta(minutes=1), None), (T0 + timedelta(minutes=2), 3.0)]
    svg = line_chart([Series("s", points)], title="t")
    d = next(el for el in parse(svg).iter() if el.tag.endswith("path")).get("d")
    assert d.count("M") == 2


def test_empty_chart_says_so() -> None:
    svg = line_chart([Series("s", [])], title="Speed")
    parse(svg)
    assert "No data yet" in svg


def test_two_series_get_a_legend() -> None:
    svg = line_chart(
        [
            Series("Fuel", [(T0, 0.5)], "chart-fuel"),
            Series("Battery", [(T0, 0.7)], "chart-battery"),
        ],
        title="Energy",
        y_min=0,
        y_max=1,
    )
    root = parse(svg)
    legend = [el.text for el in root.iter() if (el.get("class") or "").startswith("chart-legend")]
    assert legend == ["Fuel", "Battery"]


def test_higher_values_are_drawn_higher() -> None:
    svg = line_chart([Series("s", [(T0, 0.0), (T0 + timedelta(hours=1), 10.0)])], title="t")
    d = next(el for el in parse(svg).iter() if el.tag.endswith("path")).get("d")
    (x1, y1), (x2, y2) = [
        tuple(map(float, seg.split())) for seg in re.findall(r"[ML]([\d. -]+)", d)
    ]
    assert x2 > x1 and y2 < y1


def test_sparkline() -> None:
    svg = sparkline([1, 2, None, 4], label="Fuel <%>")
    parse(svg)
    assert "style=" not in svg and "&lt;%&gt;" in svg
    assert parse(sparkline([], label="x")) is not None


def test_a_series_without_data_gets_no_legend() -> None:
    svg = line_chart(
        [
            Series("Fuel", [(T0, 50.0)], "chart-fuel"),
            Series("Battery", [(T0, None)], "chart-battery"),
        ],
        title="Energy",
    )
    legend = [el.text for el in parse(svg).iter() if "chart-legend" in (el.get("class") or "")]
    assert legend == ["Fuel"]


def axis_labels(svg: str) -> list[str]:
    """The y-axis labels, top (maximum) first."""
    root = parse(svg)
    labels = [el for el in root.iter() if el.get("class") == "chart-axis"]
    return [el.text for el in labels if el.get("text-anchor") == "end" and el.get("x") == "48"]


def test_a_flat_series_gets_an_axis_from_zero_up() -> None:
    # A parked car: every speed is 0. The axis must not run from -1 to 1 km/h.
    points = [(T0 + timedelta(minutes=i), 0.0) for i in range(5)]
    svg = line_chart(
        [Series("Speed", points)], title="Speed", unit="km/h", y_min=0, floor=0, min_span=10
    )
    assert axis_labels(svg) == ["10", "0"]
    assert "-1" not in axis_labels(svg)
    # The flat line is drawn on the bottom edge of the plot, inside it.
    d = next(el for el in parse(svg).iter() if el.tag.endswith("path")).get("d")
    ys = {float(seg.split()[1]) for seg in re.findall(r"[ML]([\d. -]+)", d)}
    assert ys == {120.0}  # margin_top 22 + plot height 98


def test_a_flat_series_without_a_floor_stays_around_its_value() -> None:
    points = [(T0, 12345.0), (T0 + timedelta(minutes=5), 12345.0)]
    svg = line_chart([Series("Odometer", points)], title="Odometer", unit="km", floor=0)
    assert axis_labels(svg) == ["12,346", "12,344"]


def test_a_flat_zero_series_never_gets_negative_labels() -> None:
    points = [(T0, 0.0), (T0 + timedelta(minutes=5), 0.0)]
    svg = line_chart([Series("Odometer", points)], title="Odometer", floor=0)
    assert axis_labels(svg) == ["2", "0"]


def test_the_floor_does_not_hide_values_below_it() -> None:
    points = [(T0, -3.0), (T0 + timedelta(minutes=5), 5.0)]
    svg = line_chart([Series("s", points)], title="t", floor=0)
    assert axis_labels(svg) == ["5", "-3"]


def test_the_tooltip_names_the_unit_once() -> None:
    points = [(T0, 95.0), (T0 + timedelta(minutes=5), 96.0)]
    for value_format in (lambda v: f"{v:.0f}", lambda v: f"{v:.0f} %"):
        svg = line_chart(
            [Series("Fuel", points, "chart-fuel")],
            title="Fuel",
            unit="%",
            value_format=value_format,
        )
        titles = [el.text for el in parse(svg).iter() if el.tag.endswith("title")]
        assert "Fuel: 96 %" in titles
        assert "% %" not in svg
