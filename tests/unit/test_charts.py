"""The SVG charts: well-formed, proportional, minimum marked, text escaped, empty data handled."""

import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from scm.core.charts import _scale, horizontal_bars, monthly_bars, paired_bars, progress_gauge
from scm.core.formatting import format_number

NS = {"svg": "http://www.w3.org/2000/svg"}
MONTHS = [("Sep 2026", 400), ("Okt 2026", 1200), ("Nov 2026", 850), ("Des 2026", 1000)]


def parse(markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img" and root.get("width") == "100%" and root.get("viewBox")
    assert root.find("svg:title", NS) is not None and root.find("svg:desc", NS) is not None
    return root


def bars(root) -> list[ET.Element]:
    return [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if "chart-bar" in r.get("class", "").split()]


def classes(element) -> set[str]:
    return set(element.get("class", "").split())


def one(root, cls) -> ET.Element:
    found = [e for e in root.iter() if cls in classes(e)]
    assert len(found) == 1, f"{len(found)} elements with class {cls}"
    return found[0]


def all_text(root) -> str:
    return " ".join("".join(e.itertext()) for e in root)


def grid_ys(root) -> list[float]:
    return sorted(float(line.get("y1")) for line in root.iter() if "chart-grid" in classes(line))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, (5, 1)),
        (7, (10, 2)),
        (20, (20, 5)),
        (24, (25, 5)),
        (850, (1000, 200)),
        (1200, (2000, 500)),
        (2400, (2500, 500)),
    ],
)
def test_scale_is_a_round_maximum_with_whole_steps(value, expected):
    assert _scale(value) == expected


def test_monthly_bars_are_proportional_and_below_minimum_highlighted():
    root = parse(monthly_bars(MONTHS, minimum=1000, title="Pemakaian"))
    rects = bars(root)
    assert len(rects) == len(MONTHS)
    heights = [float(r.get("height")) for r in rects]
    assert heights[1] > heights[3] > heights[2] > heights[0] > 0
    assert heights[1] / heights[0] == pytest.approx(1200 / 400, rel=0.01)
    assert ["chart-bar-below" in classes(r) for r in rects] == [True, False, True, False]  # 1000 is not below 1000
    assert [r.get("fill") for r in rects] == ["#dc3545", "#0d6efd", "#dc3545", "#0d6efd"]
    assert root.find("svg:title", NS).text == "Pemakaian"
    assert "Nov 2026: 850" in root.find("svg:desc", NS).text
    assert [r.find("svg:title", NS).text for r in rects][2] == "Nov 2026: 850"


def test_minimum_line_sits_at_the_scaled_minimum():
    root = parse(monthly_bars(MONTHS, minimum=1000))
    line = one(root, "chart-line-minimum")
    assert line.get("y1") == line.get("y2") and line.get("stroke-dasharray")
    zero_y, top_y = max(grid_ys(root)), min(grid_ys(root))  # scale 0..2000
    height = float(root.get("viewBox").split()[3])
    assert top_y < 0.15 * height and zero_y > 0.85 * height  # the scale fills the plot
    assert float(line.get("y1")) == pytest.approx(zero_y - (zero_y - top_y) * 1000 / 2000, abs=0.1)
    at_minimum = bars(root)[3]  # the bar of exactly 1000 reaches the line
    assert float(at_minimum.get("y")) == pytest.approx(float(line.get("y1")), abs=0.1)
    assert "Minimum: 1000" in all_text(root)


def test_minimum_above_every_value_still_fits_the_scale():
    root = parse(monthly_bars([("Jan", 10), ("Feb", 20)], minimum=5000))
    line = one(root, "chart-line-minimum")
    assert float(line.get("y1")) >= min(grid_ys(root))
    assert all("chart-bar-below" in classes(r) for r in bars(root))


def test_no_minimum_no_line_and_highlight_can_be_switched_off():
    root = parse(monthly_bars(MONTHS))
    assert not [e for e in root.iter() if "chart-line-minimum" in classes(e)]
    root = parse(monthly_bars(MONTHS, minimum=1000, highlight_below=False))
    assert not [r for r in bars(root) if "chart-bar-below" in classes(r)]
    one(root, "chart-line-minimum")


def test_text_is_escaped_never_markup():
    evil = "<script>alert(1)</script>"
    for markup in (
        monthly_bars([(evil, 5)], title=evil),
        paired_bars([(evil, 5, 3)], series=(evil, "B"), title=evil),
        horizontal_bars([(evil, 5)], title=evil),
        progress_gauge(5, 10, title=evil),
        monthly_bars([], title=evil),
    ):
        assert "<script>" not in markup and "&lt;script&gt;" in markup
        root = parse(markup)
        assert not list(root.iter("script")) and not list(root.iter("{http://www.w3.org/2000/svg}script"))
        assert root.find("svg:title", NS).text == evil  # the parsed text is the user's text, intact


@pytest.mark.parametrize("points", [[], [("Jan", 0), ("Feb", 0)]])
@pytest.mark.parametrize("chart", [monthly_bars, horizontal_bars])
def test_empty_and_all_zero_show_the_empty_message(chart, points):
    root = parse(chart(points, minimum=100))
    assert bars(root) == []
    assert one(root, "chart-empty").text == "No data yet."


def test_paired_bars_empty_and_all_zero():
    for points in ([], [("Jan", 0, 0)]):
        assert one(parse(paired_bars(points)), "chart-empty").text == "No data yet."


def test_fmt_formats_axis_tooltips_and_description():
    root = parse(monthly_bars(MONTHS, minimum=1000, fmt=lambda v: f"#{v}"))
    text = all_text(root)
    assert "#2000" in text and "#0" in text  # axis labels
    assert "Minimum: #1000" in text
    assert bars(root)[1].find("svg:title", NS).text == "Okt 2026: #1200"
    assert "Okt 2026: #1200" in root.find("svg:desc", NS).text
    root = parse(horizontal_bars([("PT A", 12000)], fmt=format_number))
    assert "12.000" in all_text(root)


def test_labels_and_coordinates_hold_no_floats():
    markup = monthly_bars([("Jan", 3), ("Feb", 7)], minimum=4)
    root = parse(markup)
    axis = [e.text for e in root.iter() if "chart-axis-label" in classes(e)]
    assert axis[:6] == ["0", "2", "4", "6", "8", "10"]
    for element in root.iter():
        for name in ("x", "y", "width", "height", "x1", "y1"):
            if element.get(name) is not None:
                assert len(element.get(name).partition(".")[2]) <= 1


def test_paired_bars_two_per_group_with_legend():
    points = [("Okt", 1000, 400), ("Nov", 500, 500)]
    root = parse(paired_bars(points, series=("Diterbitkan", "Dipakai")))
    rects = bars(root)
    assert len(rects) == 2 * len(points)
    assert [("chart-series-1" in classes(r), "chart-series-2" in classes(r)) for r in rects[:2]] == [
        (True, False),
        (False, True),
    ]
    h = [float(r.get("height")) for r in rects]
    assert h[0] == pytest.approx(2 * h[2], rel=0.01) and h[2] == pytest.approx(h[3])
    assert h[0] / h[1] == pytest.approx(1000 / 400, rel=0.01)
    legend = one(root, "chart-legend")
    assert "Diterbitkan" in all_text(legend) and "Dipakai" in all_text(legend)
    assert rects[1].find("svg:title", NS).text == "Okt, Dipakai: 400"


def test_horizontal_bars_grow_highlight_and_truncate():
    long_name = "PT Wajib Pungut Dengan Nama Yang Sangat Panjang Sekali"
    points = [(long_name, 1500), ("PT B", 300), ("PT C", 1000)]
    root = parse(horizontal_bars(points, minimum=1000))
    rects = bars(root)
    assert len(rects) == 3
    widths = [float(r.get("width")) for r in rects]
    assert widths[0] / widths[1] == pytest.approx(1500 / 300, rel=0.01)
    assert ["chart-bar-below" in classes(r) for r in rects] == [False, True, False]
    line = one(root, "chart-line-minimum")
    assert line.get("x1") == line.get("x2")
    assert float(line.get("x1")) == pytest.approx(float(rects[2].get("x")) + widths[2], abs=0.1)
    labels = [shown(e) for e in root.iter() if "chart-axis-label" in classes(e)]
    assert long_name not in labels and any(t.endswith("…") and long_name.startswith(t[:-1]) for t in labels)
    shortened = next(e for e in root.iter() if "chart-axis-label" in classes(e) and shown(e).endswith("…"))
    assert shortened.find("svg:title", NS).text == long_name  # the full name on hover
    assert rects[0].find("svg:title", NS).text == f"{long_name}: 1500"
    height = lambda r: float(r.get("viewBox").split()[3])  # noqa: E731
    assert height(parse(horizontal_bars(points * 4))) > height(root)


def shown(text_element):
    """What a <text> shows: its own text, or what follows its <title> (a shortened label)."""
    title = text_element.find("svg:title", NS)
    return text_element.text if title is None else title.tail


def test_per_wapu_bars_keep_the_code_and_name_the_wapu_in_full_on_hover():
    names = [("W0004 Bendahara Uji Terpadu Satu", 5, "W0004 Bendahara Uji Terpadu Satu"),
             ("W0005 Bendahara Uji Terpadu Dua", 7, "W0005 Bendahara Uji Terpadu Dua")]
    root = parse(horizontal_bars(names))
    labels = [shown(e) for e in root.iter() if "chart-axis-label" in classes(e) and e.get("text-anchor") == "end"]
    assert [label[:5] for label in labels] == ["W0004", "W0005"] and len(set(labels)) == 2
    assert "W0005 Bendahara Uji Terpadu Dua: 7" in root.find("svg:desc", NS).text


def test_the_minimum_label_sits_above_the_plot_where_no_bar_reaches():
    root = parse(monthly_bars([("Jan", 2000), ("Feb", 1990)], minimum=1000))
    label = one(root, "chart-label-minimum")
    tallest = min(float(r.get("y")) for r in bars(root))
    assert float(label.get("y")) < tallest  # above the highest bar: no overlap
    assert float(root.get("font-size")) >= 14


@pytest.mark.parametrize(
    ("used", "minimum", "projected", "below"),
    [(400, 1000, 900, True), (400, 1000, 1100, False), (1200, 1000, None, False), (300, 1000, None, True)],
)
def test_progress_gauge_marks_below_and_above(used, minimum, projected, below):
    root = parse(progress_gauge(used, minimum, projected=projected, fmt=format_number))
    bar = one(root, "chart-bar")
    assert ("chart-bar-below" in classes(bar)) is below
    line = one(root, "chart-line-minimum")
    assert float(line.get("x1")) > float(bar.get("x"))
    if used < minimum:
        assert float(bar.get("x")) + float(bar.get("width")) < float(line.get("x1"))
    if projected is None:
        assert not [e for e in root.iter() if "chart-projection" in classes(e)]
    else:
        projection = one(root, "chart-projection")
        assert float(projection.get("width")) / float(bar.get("width")) == pytest.approx(projected / used, rel=0.01)
    assert "Minimum: 1.000" in root.find("svg:desc", NS).text


def test_progress_gauge_with_no_minimum_or_no_use():
    root = parse(progress_gauge(0, 0))
    assert "chart-bar-below" not in classes(one(root, "chart-bar"))
    assert not [e for e in root.iter() if "chart-line-minimum" in classes(e)]
    root = parse(progress_gauge(250, None, projected=500))
    assert "chart-bar-below" not in classes(one(root, "chart-bar"))


def test_horizontal_bars_can_draw_zeros():
    root = parse(horizontal_bars([("PT A", 0), ("PT B", 0)], minimum=100, zeros=True))
    assert len(bars(root)) == 2 and all("chart-bar-below" in classes(r) for r in bars(root))
    assert one(root, "chart-line-minimum") is not None and not [e for e in root.iter() if "chart-empty" in classes(e)]
