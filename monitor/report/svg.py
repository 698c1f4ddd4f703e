"""Charts as inline SVG text, drawn on the server: a drift heatmap, histograms, paired bars
and lines over windows. Every text that may come from traffic passes through :func:`esc`;
links are built by the caller (already escaped by :func:`esc` here). Sizes are pixels."""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitor.report.view import ModelView

REFERENCE_COLOUR = "#4477aa"
CURRENT_COLOUR = "#ee7733"
SERIES_COLOURS = ("#4477aa", "#ee7733", "#228833", "#aa3377", "#66ccee", "#ccbb44")
LABEL_WIDTH = 190
ROW_HEIGHT = 18
_MAX_LABEL = 28  # characters of a feature name drawn beside the heatmap (the title has it all)


def esc(value: Any) -> str:
    """Text or attribute value, escaped for HTML and SVG (quotes included)."""
    return html.escape(str(value), quote=True)


def num(value: float | None, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, '-' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def short(value: float) -> str:
    """A number for an axis: 3 significant digits, thousands as k and millions as M."""
    size = abs(value)
    if size >= 1e6 and size < 1e15:
        return f"{value / 1e6:.3g}M"
    if size >= 1e3 and size < 1e6:
        return f"{value / 1e3:.3g}k"
    return num(value)


def cell_colour(ratio: float | None) -> str:
    """Blue (no change) to red (three times the threshold and more); the threshold is orange."""
    if ratio is None or not math.isfinite(ratio):
        return "#dddddd" if ratio is None or math.isnan(ratio) else "#b2182b"
    return _colour(round(max(0.0, min(ratio, 3.0)), 2))


@functools.lru_cache(maxsize=512)
def _colour(ratio: float) -> str:
    t = ratio / 3.0
    stops = ((0.0, (238, 244, 251)), (1 / 3, (253, 212, 158)), (1.0, (178, 24, 43)))
    for (t0, c0), (t1, c1) in zip(stops, stops[1:], strict=False):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            r, g, b = (round(a + (z - a) * f) for a, z in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#b2182b"


def heatmap(view: ModelView, link: Callable[[str, int], str]) -> str:
    """Features (rows) x windows (columns) coloured by drift score / threshold; a drifted
    cell is outlined and dotted. ``link(feature, window)`` gives each cell's href."""
    n = len(view.windows)
    cell = max(3, min(28, 900 // max(n, 1)))
    width = LABEL_WIDTH + n * cell + 10
    height = 30 + len(view.features) * ROW_HEIGHT + 20
    parts = [
        f'<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="drift heatmap">'
    ]
    step = max(1, math.ceil(40 / cell))
    for i, window in enumerate(view.windows):
        if i % step == 0:
            x = LABEL_WIDTH + i * cell + cell / 2
            parts.append(f'<text class="tick" x="{x:.1f}" y="22" text-anchor="middle">{window.seq}</text>')
    latest = view.latest.seq if view.latest else 0
    size = f'width="{cell - 1}" height="{ROW_HEIGHT - 2}"'
    for row, feature in enumerate(view.features):
        y = 30 + row * ROW_HEIGHT
        name = feature if len(feature) <= _MAX_LABEL else feature[: _MAX_LABEL - 1] + "\u2026"
        shown = esc(feature)  # escaped once per row: 5,000 cells are drawn in well under 0.1 s
        parts.append(
            f'<a href="{esc(link(feature, latest))}"><text class="feature-label" x="{LABEL_WIDTH - 6}" '
            f'y="{y + ROW_HEIGHT - 5}" text-anchor="end"><title>{shown}</title>{esc(name)}</text></a>'
        )
        for i, window in enumerate(view.windows):
            c = view.cells.get((feature, window.seq))
            if c is None:
                continue
            x = LABEL_WIDTH + i * cell
            if c.insufficient:
                kind, tip = "cell insufficient", "insufficient data"
            else:
                kind = "cell flagged" if c.drift else "cell"
                tip = f"{esc(c.effect)} {num(c.score)} / {num(c.threshold)}, p adj {num(c.adjusted_pvalue)}"
            mark = outline = ""
            if c.drift:
                outline = ' stroke="#000" stroke-width="1.5"'
                mark = f'<circle cx="{x + cell / 2:.1f}" cy="{y + ROW_HEIGHT / 2 - 1:.1f}" r="{max(1.0, cell / 5):.1f}" fill="#000"/>'
            parts.append(
                f'<a href="{esc(link(feature, window.seq))}"><rect class="{kind}" data-feature="{shown}" '
                f'data-window="{window.seq}" x="{x}" y="{y}" {size} fill="{cell_colour(c.ratio)}"{outline}>'
                f"<title>{shown}, window {window.seq}: {tip}</title></rect>{mark}</a>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    *,
    title: str,
    reference: float | None = None,
    reference_label: str = "reference",
    threshold: float | None = None,
    marker: float | None = None,
    band: Sequence[tuple[float, float | None, float | None]] = (),
    x_label: Callable[[float], str] | None = None,
    from_zero: bool = True,
    width: int = 560,
    height: int = 200,
) -> str:
    """Lines of (x, y) points (a None y breaks a line), with optional horizontal lines for a
    reference value (dashed) and a threshold (dotted), a vertical marker at ``marker``, a
    shaded ``band`` of (x, low, high) around the first line, and ``x_label`` to write the
    x ticks (default: rounded numbers, e.g. window numbers). ``from_zero``: the y axis starts
    at 0 (or below); else it fits the values, for small differences near 1 such as metrics'."""
    points = [(x, y) for values in series.values() for x, y in values if y is not None and math.isfinite(y)]
    shaded = [(x, lo, hi) for x, lo, hi in band if lo is not None and hi is not None and math.isfinite(lo + hi)]
    points += [(x, v) for x, lo, hi in shaded for v in (lo, hi)]
    left, right, top, bottom = 56, 12, 24, 28
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f'<text class="title" x="{left}" y="14">{esc(title)}</text>',
    ]
    if not points:
        parts.append(f'<text class="empty" x="{left}" y="{height / 2:.0f}">no data yet</text></svg>')
        return "".join(parts)
    xs = [x for x, _ in points]
    ys = [y for _, y in points] + [v for v in (reference, threshold) if v is not None and math.isfinite(v)]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)) if from_zero else min(ys), max(ys)
    if not from_zero:
        y0 -= (y1 - y0) * 0.08
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y1 = y0 + 1
    y1 += (y1 - y0) * 0.08

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts.append(_axes(left, top, width - right, height - bottom, (x0, x1), (y0, y1), sx, sy, x_label))
    if shaded:
        parts.append(_band(shaded, sx, sy))
    for value, label, dash in ((reference, reference_label, "6 4"), (threshold, "threshold", "2 3")):
        if value is not None and math.isfinite(value):
            # With both lines, the threshold's label goes below its line: the two lines may be close.
            below = label == "threshold" and reference is not None
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" stroke="#555" '
                f'stroke-dasharray="{dash}"/><text class="tick" x="{width - right}" '
                f'y="{sy(value) + (11 if below else -3):.1f}" text-anchor="end">{esc(label)} {num(value)}</text>'
            )
    if marker is not None and x0 <= marker <= x1:
        parts.append(f'<line class="marker" x1="{sx(marker):.1f}" x2="{sx(marker):.1f}" y1="{top}" '
                     f'y2="{height - bottom}" stroke="#000" stroke-width="1"/>')  # fmt: skip
    for index, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        for run in _runs(values):
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in run)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>')
            if len(run) == 1:
                x, y = run[0]
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="{colour}"/>')
        if len(series) > 1:
            lx = left + 8 + index * 110
            parts.append(f'<rect x="{lx}" y="{top - 2}" width="10" height="3" fill="{colour}"/>'
                         f'<text class="tick" x="{lx + 14}" y="{top + 2}">{esc(name)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _band(
    shaded: Sequence[tuple[float, float, float]], sx: Callable[[float], float], sy: Callable[[float], float]
) -> str:
    """A shaded polygon: the upper edge left to right, then the lower edge back."""
    edge = [f"{sx(x):.1f},{sy(hi):.1f}" for x, _, hi in shaded] + [
        f"{sx(x):.1f},{sy(lo):.1f}" for x, lo, _ in shaded[::-1]
    ]
    return f'<polygon class="band" fill="{SERIES_COLOURS[0]}" fill-opacity="0.18" points="{" ".join(edge)}"/>'


def _runs(values: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in sorted(values):
        if y is None or not math.isfinite(y):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    return [run for run in runs if run]


def _axes(
    x_left: float, y_top: float, x_right: float, y_bottom: float,
    xr: tuple[float, float], yr: tuple[float, float],
    sx: Callable[[float], float], sy: Callable[[float], float], x_label: Callable[[float], str] | None = None,
) -> str:  # fmt: skip
    parts = [f'<line x1="{x_left}" x2="{x_right}" y1="{y_bottom}" y2="{y_bottom}" stroke="#999"/>',
             f'<line x1="{x_left}" x2="{x_left}" y1="{y_top}" y2="{y_bottom}" stroke="#999"/>']  # fmt: skip
    for i in range(5):
        y = yr[0] + (yr[1] - yr[0]) * i / 4
        parts.append(f'<text class="tick" x="{x_left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{num(y)}</text>')
    ticks = sorted({round(xr[0] + (xr[1] - xr[0]) * i / (3 if x_label else 5)) for i in range(4 if x_label else 6)})
    for x in ticks:
        text = esc(x_label(x)) if x_label else x
        # A long label (a time) at either end would be cut by the chart's edge: anchored inwards.
        anchor = "middle" if not x_label else "start" if x == ticks[0] else "end" if x == ticks[-1] else "middle"
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{y_bottom + 14}" text-anchor="{anchor}">{text}</text>')
    return "".join(parts)


def distribution(data: Mapping[str, Any], *, width: int = 640, height: int = 240) -> str:
    """The reference and the window side by side: shares of each side's count per slot,
    overlaid on the reference's bins (numeric) or paired per category (categorical)."""
    reference = [float(c) for c in data.get("reference", [])]
    current = [float(c) for c in data.get("current", [])]
    numeric = data.get("kind") == "numeric"
    if numeric:
        edges = [float(e) for e in data.get("edges", [])]
        labels = [f"\u2264 {short(edges[0])}" if edges else "all"]
        labels += [f"{short(a)}\u2013{short(b)}" for a, b in zip(edges, edges[1:], strict=False)]
        labels += [f"> {short(edges[-1])}"] if edges else []
    else:
        labels = [str(c) for c in data.get("categories", [])]
    left, right, top, bottom = 48, 10, 26, 64
    parts = [
        f'<svg class="distribution" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="reference and window distributions">',
        f'<rect x="{left}" y="6" width="10" height="10" fill="{REFERENCE_COLOUR}" fill-opacity="0.45"/>'
        f'<text class="tick" x="{left + 14}" y="15">reference ({int(sum(reference))})</text>',
        f'<rect x="{left + 150}" y="6" width="10" height="10" fill="{CURRENT_COLOUR}" fill-opacity="0.6"/>'
        f'<text class="tick" x="{left + 164}" y="15">window ({int(sum(current))})</text>',
    ]
    slots = min(len(reference), len(current), len(labels))
    shares = [_shares(reference), _shares(current)]
    peak = max([*shares[0], *shares[1], 1e-9])
    slot = (width - left - right) / max(slots, 1)
    plot = height - top - bottom
    for i in range(slots):
        x = left + i * slot
        for side, (colour, opacity) in enumerate(((REFERENCE_COLOUR, 0.45), (CURRENT_COLOUR, 0.6))):
            share = shares[side][i]
            h = share / peak * plot
            # Numeric: both bars span the bin (overlaid); categorical: side by side.
            bx, bw = (x + 1, slot - 2) if numeric else (x + 2 + side * (slot - 4) / 2, (slot - 4) / 2)
            what = ("reference", "window")[side]
            parts.append(
                f'<rect class="bar {what}" x="{bx:.1f}" y="{top + plot - h:.1f}" width="{max(bw, 0.5):.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="{opacity}"><title>{esc(labels[i])}: {what} '
                f"{share:.1%}</title></rect>"
            )
        if slots <= 24 or i % math.ceil(slots / 24) == 0:
            label = labels[i] if len(labels[i]) <= 18 else labels[i][:17] + "\u2026"
            cx, cy = x + slot / 2, top + plot + 10
            parts.append(f'<text class="tick" x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                         f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{esc(label)}</text>')  # fmt: skip
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot}" y2="{top + plot}" stroke="#999"/>')
    parts.append(f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{peak:.0%}</text></svg>')
    return "".join(parts)


def _shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]
