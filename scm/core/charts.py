"""Server-rendered SVG charts (no JavaScript): monthly bars, paired bars, horizontal bars, a progress gauge.

Each function returns one accessible ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that
summarises the data, scaled by ``width="100%"``. CSS classes let the stylesheet colour the parts;
presentation attributes (``fill``, ``stroke``) are defaults that any CSS rule overrides. Every text
passed in is escaped; ``fmt`` formats the values (e.g. ``format_number`` or ``format_rupiah``).
"""

from collections.abc import Callable, Sequence

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
BAR, BELOW, SECOND, GRID, TEXT, TRACK = "#0d6efd", "#dc3545", "#20c997", "#dee2e6", "#6c757d", "#e9ecef"
# The viewBox is about as wide as a half-page card at 1366 px, so that text of FONT_SIZE units shows
# at about FONT_SIZE px (the page's small text); on a phone the chart keeps that width and scrolls
# sideways (``.chart-scroll`` in app.css) instead of shrinking its text.
WIDTH, HEIGHT, FONT_SIZE = 500, 260, 14
PAD_TOP, PAD_BOTTOM, PAD_RIGHT = 34, 30, 12
ROW, LABEL_CHARS, VALUE_SPACE, CHAR_WIDTH = 28, 18, 60, 8.6
SERIES = (_l("Issued"), _l("Consumed"))  # lazy: translated when drawn


def _num(x: float) -> str:
    return f"{round(x, 1) + 0.0:.1f}".removesuffix(".0")  # + 0.0 turns -0.0 into 0.0


def _tag(name: str, body="", /, **attrs) -> Markup:
    """One element; ``class_`` -> ``class``, ``text_anchor`` -> ``text-anchor``; text and values are escaped."""
    attributes = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{escape(_num(value) if isinstance(value, int | float) else str(value))}"'
        for key, value in attrs.items()
        if value is not None
    )
    if isinstance(body, list):
        body = Markup("").join(body)
    elif not isinstance(body, Markup):
        body = escape(str(body))  # str() first: a lazy string's __html__ would skip escaping
    return Markup(f"<{name}{attributes}>{body}</{name}>" if body else f"<{name}{attributes}/>")


def _text(text, cls: str, x: float, y: float, anchor="start", fill=TEXT, tip=None) -> Markup:
    """A text; ``tip`` (the full text of a shortened one) shows on hover and to screen readers."""
    halo = {"stroke": "#fff", "stroke_width": 3, "paint_order": "stroke"} if fill == BELOW else {}  # legible over bars
    body = Markup("").join([_tag("title", tip), escape(str(text))]) if tip else text
    return _tag("text", body, class_=cls, x=x, y=y, text_anchor=anchor, fill=fill, **halo)


def _line(cls: str, x1: float, y1: float, x2: float, y2: float, stroke=GRID, dash=None) -> Markup:
    width = 1.5 if dash else None
    return _tag(
        "line", class_=cls, x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, stroke_width=width, stroke_dasharray=dash
    )


def _bar(tip: str, below: bool, x: float, y: float, width: float, height: float, cls="chart-bar", fill=BAR) -> Markup:
    cls, fill = (f"{cls} chart-bar-below", BELOW) if below else (cls, fill)
    return _tag("rect", _tag("title", tip), class_=cls, x=x, y=y, width=width, height=height, fill=fill)


def _svg(kind: str, height: float, title, desc: str, children: list) -> Markup:
    head = [_tag("title", str(title) or _("Chart")), _tag("desc", desc)]
    return _tag(
        "svg", head + children, xmlns=SVG_NS, role="img", class_=f"chart chart-{kind}",
        viewBox=f"0 0 {WIDTH} {_num(height)}", width="100%", font_family=FONT, font_size=FONT_SIZE,
    )  # fmt: skip


def _empty(kind: str, title, height: int = 120) -> Markup:
    message = _("No data yet.")
    return _svg(kind, height, title, message, [_text(message, "chart-empty", WIDTH / 2, height / 2, "middle")])


def _scale(value) -> tuple[int, int]:
    """The smallest round maximum (1, 2, 2.5 or 5 × 10^n) at or above value with 4–5 whole-number steps."""
    exponent = 0
    while True:
        for mantissa, divisions in ((10, 5), (20, 4), (25, 5), (50, 5)):
            top10 = mantissa * 10**exponent  # in tenths, so that 2.5 × 10^n stays an integer
            step10, rest = divmod(top10, divisions)
            if rest == 0 and step10 % 10 == 0 and top10 // 10 >= value:
                return top10 // 10, step10 // 10
        exponent += 1


def _truncate(text, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _anchor(x: float, left: float, right: float) -> str:
    return "start" if x < left + 60 else "end" if x > right - 60 else "middle"


def _minimum_label(minimum, fmt) -> str:
    return _("Minimum: %(value)s", value=fmt(minimum))


def _summary(points: Sequence, minimum, fmt: Callable) -> str:
    desc = "; ".join(f"{full[0] if full else label}: {fmt(value)}" for label, value, *full in points)
    return desc if minimum is None else f"{desc}. {_minimum_label(minimum, fmt)}"


def _vertical_frame(labels: list, top: int, step: int, fmt: Callable):
    """Gridlines, y-axis labels and x-axis labels; returns (elements, left, slot width, y of a value)."""
    ticks = [(value, str(fmt(value))) for value in range(0, top + 1, step)]
    left = 10 + CHAR_WIDTH * max(len(text) for _value, text in ticks)
    bottom, plot_h = HEIGHT - PAD_BOTTOM, HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = (WIDTH - left - PAD_RIGHT) / len(labels)

    def y(value) -> float:
        return bottom - plot_h * max(value, 0) / top

    parts = []
    for value, text in ticks:
        parts.append(_line("chart-grid", left, y(value), WIDTH - PAD_RIGHT, y(value)))
        parts.append(_text(text, "chart-axis-label", left - 6, y(value) + 4, "end"))
    widest = max(len(str(label)) for label in labels) * CHAR_WIDTH + 6
    every = max(1, -(-int(widest) // max(int(slot), 1)))  # when labels would collide, name every n-th slot
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % every == 0:  # always the latest (rightmost) one
            parts.append(_text(str(label), "chart-axis-label", left + slot * (i + 0.5), bottom + 16, "middle"))
    return parts, left, slot, y


def monthly_bars(points: Sequence, minimum=None, title="", fmt: Callable = str, highlight_below=True) -> Markup:
    """Vertical bars per (label, value), e.g. 12 months of use, with an optional dashed minimum line."""
    if not points or not any(value for _label, value in points):
        return _empty("bars", title)
    top, step = _scale(max(max(value for _label, value in points), minimum or 0))
    parts, left, slot, y = _vertical_frame([label for label, _value in points], top, step, fmt)
    for i, (label, value) in enumerate(points):
        below = highlight_below and minimum is not None and value < minimum
        x = left + slot * (i + 0.15)
        parts.append(_bar(f"{label}: {fmt(value)}", below, x, y(value), slot * 0.7, y(0) - y(value)))
    if minimum is not None:  # the line across the bars; its label above the plot, where no bar reaches
        parts.append(_line("chart-line-minimum", left, y(minimum), WIDTH - PAD_RIGHT, y(minimum), BELOW, "6 4"))
        label = _minimum_label(minimum, fmt)
        key_x = WIDTH - PAD_RIGHT - CHAR_WIDTH * len(label) - 28
        parts.append(_line("chart-key-minimum", key_x, PAD_TOP - 16, key_x + 22, PAD_TOP - 16, BELOW, "6 4"))
        parts.append(_text(label, "chart-label-minimum", WIDTH - PAD_RIGHT, PAD_TOP - 11, "end", BELOW))
    return _svg("bars", HEIGHT, title, _summary(points, minimum, fmt), parts)


def paired_bars(points: Sequence, series=SERIES, title="", fmt: Callable = str) -> Markup:
    """Two bars per (label, a, b) group, e.g. quota issued vs consumed per month, with a legend."""
    if not points or not any(a or b for _label, a, b in points):
        return _empty("paired", title)
    names, fills = [str(name) for name in series], (BAR, SECOND)
    top, step = _scale(max(max(a, b) for _label, a, b in points))
    parts, left, slot, y = _vertical_frame([label for label, _a, _b in points], top, step, fmt)
    for i, (label, *values) in enumerate(points):
        for k, value in enumerate(values):
            tip, x = f"{label}, {names[k]}: {fmt(value)}", left + slot * (i + 0.1 + 0.4 * k)
            parts.append(
                _bar(tip, False, x, y(value), slot * 0.4, y(0) - y(value), f"chart-bar chart-series-{k + 1}", fills[k])
            )
    legend, x = [], left
    for k, name in enumerate(names):
        legend.append(_tag("rect", class_=f"chart-series-{k + 1}", x=x, y=8, width=10, height=10, fill=fills[k]))
        legend.append(_text(name, "chart-legend-label", x + 14, 17))
        x += 30 + CHAR_WIDTH * len(name)
    parts.append(_tag("g", legend, class_="chart-legend"))
    desc = "; ".join(f"{label}: {names[0]} {fmt(a)}, {names[1]} {fmt(b)}" for label, a, b in points)
    return _svg("paired", HEIGHT, title, desc, parts)


def horizontal_bars(points: Sequence, minimum=None, title="", fmt: Callable = str, zeros=False) -> Markup:
    """One horizontal bar per (label, value) or (label, value, full label), e.g. use per WAPU (``W0004 Dinas
    Pendidikan…`` with the full name on hover); bars below the minimum highlighted. ``zeros``: values of
    0 are worth drawing (the WAPUs that used nothing) rather than 'no data'."""
    if not points or not (zeros or any(point[1] for point in points)):
        return _empty("horizontal", title)
    top, step = _scale(max(max(point[1] for point in points), minimum or 0))
    left, right, bottom = 20 + CHAR_WIDTH * LABEL_CHARS, WIDTH - VALUE_SPACE, PAD_TOP + ROW * len(points)

    def x(value) -> float:
        return left + (right - left) * max(value, 0) / top

    parts = []
    for value in range(0, top + 1, step):
        parts.append(_line("chart-grid", x(value), PAD_TOP, x(value), bottom))
        parts.append(_text(fmt(value), "chart-axis-label", x(value), bottom + 16, "middle"))
    for i, (label, value, *full) in enumerate(points):
        full = str(full[0]) if full else str(label)
        row_y, below = PAD_TOP + ROW * i, minimum is not None and value < minimum
        short = _truncate(label, LABEL_CHARS)
        parts.append(_text(short, "chart-axis-label", left - 8, row_y + ROW / 2 + 5, "end",
                           tip=full if short != full else None))
        parts.append(_bar(f"{full}: {fmt(value)}", below, left, row_y + ROW * 0.2, x(value) - left, ROW * 0.6))
        parts.append(_text(fmt(value), "chart-value", x(value) + 4, row_y + ROW / 2 + 5))
    if minimum is not None:
        xm = x(minimum)
        parts.append(_line("chart-line-minimum", xm, PAD_TOP - 4, xm, bottom, BELOW, "6 4"))
        parts.append(
            _text(_minimum_label(minimum, fmt), "chart-label-minimum", xm, PAD_TOP - 8, _anchor(xm, 0, WIDTH), BELOW)
        )
    return _svg("horizontal", bottom + PAD_BOTTOM, title, _summary(points, minimum, fmt), parts)


def progress_gauge(used, minimum, projected=None, title="", fmt: Callable = str) -> Markup:
    """A progress bar: used so far, the projected month-end total and the minimum mark."""
    minimum = minimum or 0
    top, _step = _scale(max(used, projected or 0, minimum, 1))
    left, right, bar_y, bar_h = 8, WIDTH - 8, 26, 18
    below = minimum > 0 and (used if projected is None else projected) < minimum

    def x(value) -> float:
        return left + (right - left) * min(max(value, 0), top) / top

    parts = [_tag("rect", class_="chart-track", x=left, y=bar_y, width=right - left, height=bar_h, rx=3, fill=TRACK)]
    summary = [_("Used: %(value)s", value=fmt(used))]
    if projected is not None:
        summary.append(_("Projected month end: %(value)s", value=fmt(projected)))
        fill = BELOW if below else BAR
        parts.append(_tag("rect", _tag("title", summary[-1]), class_="chart-projection", x=left, y=bar_y,
                          width=x(projected) - left, height=bar_h, fill=fill, fill_opacity=0.3))  # fmt: skip
    parts.append(_bar(summary[0], below, left, bar_y, x(used) - left, bar_h))
    visible = " · ".join(summary)
    if minimum > 0:
        summary.append(_minimum_label(minimum, fmt))
        xm = x(minimum)
        parts.append(_line("chart-line-minimum", xm, bar_y - 6, xm, bar_y + bar_h + 4, BELOW, "4 2"))
        parts.append(_text(summary[-1], "chart-label-minimum", xm, bar_y - 10, _anchor(xm, left, right), BELOW))
    parts.append(_text(visible, "chart-gauge-label", left, bar_y + bar_h + 18))
    return _svg("gauge", 72, title, "; ".join(summary), parts)
