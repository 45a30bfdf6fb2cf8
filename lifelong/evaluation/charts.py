"""SVG charts of the dashboard, drawn as strings: line charts, stacked bars, the accuracy heatmap.

Pure functions of their data and a :class:`DashboardConfig`; every string from
data is HTML-escaped (:func:`esc`). :mod:`lifelong.evaluation.dashboard`
composes them into the page.
"""
from __future__ import annotations

import dataclasses
import html
import math
from typing import Optional, Sequence

from lifelong.evaluation.history import RunHistory


@dataclasses.dataclass
class DashboardConfig:
    """Look of the dashboard.

    ``chart_width``/``chart_height``: plot size in CSS pixels (a 1400 px wide
    window fits two charts side by side); ``reference_strategy``: runs with
    this strategy are the reference for relative gain (the multitask upper
    bound in the paper); ``max_label_chars`` / ``heatmap_label_chars``: longer
    names are cut in chart legends / heatmap column heads (the full name stays
    in the tooltip and the tables); ``written``: say when the page was written
    (off for a page that is a pure function of committed files, such as the
    comparison's, so writing it again changes no byte).
    """

    title: str = "lifelong: run dashboard"
    chart_width: int = 620
    chart_height: int = 260
    reference_strategy: str = "multitask"
    max_label_chars: int = 64  # a legend row spans the chart width
    heatmap_label_chars: int = 16  # column heads are slanted over ~120 px cells
    written: bool = True


# Colour-blind-friendly categorical palette (Okabe-Ito plus greys), one per run/task/expert.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999999", "#882255"]
DASHES = ["", "6 3", "2 3", "8 3 2 3"]
# Heatmap colour stops for accuracy 0 -> 1 (ColorBrewer YlGnBu: light = low, dark = high;
# five stops so that neighbouring high accuracies stay distinguishable).
HEAT_STOPS = [(0.0, (255, 255, 217)), (0.25, (199, 233, 180)), (0.5, (65, 182, 196)), (0.75, (34, 94, 168)), (1.0, (8, 29, 88))]
MARGIN = dict(left=56, right=16, top=34, bottom=40)
LEGEND_ROW = 18


def esc(x) -> str:
    """HTML-escape anything for text and attribute values."""
    return html.escape(str(x), quote=True)


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: max(n - 1, 1)] + "\u2026"


def fmt_number(v: Optional[float], digits: int = 3) -> str:
    """Short number for labels: integers as such, else ``digits`` decimals without trailing zeros."""
    if v is None or not math.isfinite(v):
        return "\u2013"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) < 10 ** -digits:
        return f"{v:.2g}"
    return f"{v:.{digits}f}".rstrip("0").rstrip(".")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


@dataclasses.dataclass
class Series:
    """One line of a line chart; ``points`` are (x, y), a NaN y breaks the line."""

    label: str
    points: list[tuple[float, float]]
    color: str
    dash: str = ""
    run: str = ""


class _Frame:
    """Axes and scales of one chart; ``x``/``y`` map data to pixels."""

    def __init__(self, cfg: DashboardConfig, xs: Sequence[float], ys: Sequence[float], *, y_range=None, x_integer=True):
        self.w, self.h = cfg.chart_width, cfg.chart_height
        xs = [x for x in xs if math.isfinite(x)] or [0.0, 1.0]
        ys = [y for y in ys if math.isfinite(y)] or [0.0, 1.0]
        lo, hi = y_range if y_range else (min(ys), max(ys))
        if y_range is None and hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        self.yt = _nice_ticks(lo, hi)
        self.y0, self.y1 = self.yt[0], self.yt[-1]
        self.x0, self.x1 = min(xs), max(xs)
        if self.x1 - self.x0 < 1e-12:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        if x_integer and self.x1 - self.x0 <= 12:
            self.xt = [float(v) for v in range(math.ceil(self.x0), math.floor(self.x1) + 1)]
        else:
            self.xt = [t for t in _nice_ticks(self.x0, self.x1) if self.x0 - 1e-9 <= t <= self.x1 + 1e-9]
        self.pl, self.pt = MARGIN["left"], MARGIN["top"]
        self.pw = self.w - MARGIN["left"] - MARGIN["right"]
        self.ph = self.h - MARGIN["top"] - MARGIN["bottom"]

    def x(self, v: float) -> float:
        return self.pl + (v - self.x0) / (self.x1 - self.x0) * self.pw

    def y(self, v: float) -> float:
        return self.pt + (1 - (v - self.y0) / (self.y1 - self.y0)) * self.ph

    def axes(self, title: str, x_label: str, y_label: str) -> list[str]:
        out = [f'<text class="title" x="{self.pl}" y="20">{esc(title)}</text>']
        for t in self.yt:
            yy = self.y(t)
            out.append(f'<line class="grid" x1="{self.pl}" x2="{self.pl + self.pw}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
            out.append(f'<text class="tick" x="{self.pl - 6}" y="{yy + 4:.1f}" text-anchor="end">{esc(fmt_number(t))}</text>')
        for t in self.xt:
            xx = self.x(t)
            out.append(f'<line class="axis" x1="{xx:.1f}" x2="{xx:.1f}" y1="{self.pt + self.ph}" y2="{self.pt + self.ph + 4}"/>')
            out.append(f'<text class="tick" x="{xx:.1f}" y="{self.pt + self.ph + 16}" text-anchor="middle">{esc(fmt_number(t))}</text>')
        out.append(f'<rect class="frame" x="{self.pl}" y="{self.pt}" width="{self.pw}" height="{self.ph}"/>')
        out.append(f'<text class="label" x="{self.pl + self.pw / 2:.1f}" y="{self.h - 6}" text-anchor="middle">{esc(x_label)}</text>')
        out.append(
            f'<text class="label" transform="translate(14 {self.pt + self.ph / 2:.1f}) rotate(-90)" text-anchor="middle">{esc(y_label)}</text>'
        )
        return out


def _legend(cfg: DashboardConfig, items: list[tuple[str, str, str, str]], top: float) -> list[str]:
    """Legend rows ``(label, color, dash, kind)`` from y = ``top``; kind 'line' or 'box'."""
    out = ['<g class="legend">']
    for k, (label, color, dash, kind) in enumerate(items):
        y = top + k * LEGEND_ROW
        x = MARGIN["left"]
        if kind == "box":
            out.append(f'<rect x="{x}" y="{y - 9}" width="18" height="10" fill="{color}"/>')
        else:
            out.append(
                f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}"/>'
            )
        out.append(
            f'<text class="legend-label" x="{x + 24}" y="{y}"><title>{esc(label)}</title>{esc(_cut(label, cfg.max_label_chars))}</text>'
        )
    out.append("</g>")
    return out


def _svg(chart_id: str, cfg: DashboardConfig, height: float, body: list[str], extra_class: str = "") -> str:
    cls = f"chart {extra_class}".strip()
    return (
        f'<svg class="{cls}" id="{esc(chart_id)}" role="img" '
        f'width="{cfg.chart_width}" height="{height:.0f}" viewBox="0 0 {cfg.chart_width} {height:.0f}">'
        + "".join(body)
        + "</svg>"
    )


def _no_data(f: _Frame) -> str:
    return f'<text class="empty" x="{f.pl + f.pw / 2:.1f}" y="{f.pt + f.ph / 2:.1f}" text-anchor="middle">no data yet</text>'


def line_chart(chart_id: str, title: str, series: list[Series], cfg: DashboardConfig, *, x_label: str, y_label: str,
               y_range: Optional[tuple[float, float]] = None, x_integer: bool = True, markers: bool = True) -> str:
    """An SVG line chart with one polyline per series and a legend underneath."""
    xs = [p[0] for s in series for p in s.points]
    ys = [p[1] for s in series for p in s.points]
    f = _Frame(cfg, xs, ys, y_range=y_range, x_integer=x_integer)
    body = f.axes(title, x_label, y_label)
    if not any(math.isfinite(y) for y in ys):
        body.append(_no_data(f))
    for s in series:
        segs, cur = [], []
        for x, y in s.points:
            if math.isfinite(x) and math.isfinite(y):
                cur.append((f.x(x), f.y(y)))
            elif cur:
                segs.append(cur)
                cur = []
        if cur:
            segs.append(cur)
        d = " ".join("M" + " L".join(f"{px:.1f} {py:.1f}" for px, py in seg) for seg in segs)
        body.append(
            f'<g class="series" data-run="{esc(s.run)}" data-label="{esc(s.label)}"><title>{esc(s.label)}</title>'
            f'<path d="{d}" fill="none" stroke="{s.color}" stroke-width="2" stroke-dasharray="{s.dash}"/>'
        )
        if markers:
            for x, y in s.points:
                if math.isfinite(x) and math.isfinite(y):
                    body.append(
                        f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="3" fill="{s.color}">'
                        f"<title>{esc(s.label)}: {esc(fmt_number(x))}, {esc(fmt_number(y, 4))}</title></circle>"
                    )
        body.append("</g>")
    body += _legend(cfg, [(s.label, s.color, s.dash, "line") for s in series], f.h + 8)
    return _svg(chart_id, cfg, f.h + 8 + LEGEND_ROW * len(series), body)


def stacked_bar_chart(chart_id: str, title: str, xs: list[int], stacks: dict[str, list[float]], colors: dict[str, str],
                      cfg: DashboardConfig, *, x_label: str, y_label: str) -> str:
    """Stacked bars: at each x, one segment per key of ``stacks`` (values aligned with ``xs``)."""
    totals = [sum(v[k] for v in stacks.values()) for k in range(len(xs))]
    f = _Frame(cfg, [x - 0.5 for x in xs] + [x + 0.5 for x in xs], [0.0] + totals, x_integer=True)
    f.xt = [float(x) for x in xs]
    body = f.axes(title, x_label, y_label)
    if not xs:
        body.append(_no_data(f))
    bw = max(min(f.pw / max(len(xs), 1) * 0.6, 60), 4)
    for k, x in enumerate(xs):
        base = 0.0
        for name, vals in stacks.items():
            v = vals[k]
            if v <= 0:
                continue
            y_top, y_bot = f.y(base + v), f.y(base)
            body.append(
                f'<rect class="bar" data-expert="{esc(name)}" x="{f.x(x) - bw / 2:.1f}" y="{y_top:.1f}" width="{bw:.1f}" '
                f'height="{max(y_bot - y_top, 0.5):.1f}" fill="{colors[name]}"><title>round {x}: {esc(name)} {esc(fmt_number(v))}</title></rect>'
            )
            base += v
    items = [(name, colors[name], "", "box") for name in stacks]
    body += _legend(cfg, items, f.h + 8)
    return _svg(chart_id, cfg, f.h + 8 + LEGEND_ROW * len(items), body)


def _heat_color(v: float) -> tuple[str, str]:
    """(fill, text colour) for accuracy ``v`` in [0, 1]; grey for NaN."""
    if not math.isfinite(v):
        return "#e6e6e6", "#666666"
    v = min(max(v, 0.0), 1.0)
    for (a, ca), (b, cb) in zip(HEAT_STOPS, HEAT_STOPS[1:]):
        if v <= b:
            w = (v - a) / (b - a)
            rgb = [round(x + (y - x) * w) for x, y in zip(ca, cb)]
            break
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "#%02x%02x%02x" % tuple(rgb), "#ffffff" if lum < 140 else "#111111"


def column_groups(h: RunHistory) -> list[tuple[str, str, list[int]]]:
    """Per column of ``h``: (the dataset or suite it came from, its kind, the rounds that taught it).

    A history without column records: task i came from the dataset of round i + 1.
    """
    if h.columns:
        return [(c.source, c.kind, list(c.rounds)) for c in h.columns]
    named = {r.round: r.dataset for r in h.rounds}
    return [(named.get(i + 1, task), "dataset", [i + 1]) for i, task in enumerate(h.tasks)]


def heatmap(chart_id: str, title: str, h: RunHistory, cfg: DashboardConfig) -> str:
    """The accuracy matrix: rows = rounds (0 = before training), columns = tasks, numbers in the cells.

    Columns are grouped under the dataset (or suite) they came from, a band
    per group; the cells of the rounds that taught a task (``a[L_i, i]`` and
    every later round whose dataset carries it) are outlined.
    """
    m = h.accuracy_matrix()
    groups = column_groups(h)
    n_rows, n_cols = max(m.shape[0], 1), max(len(h.tasks), 1)
    left, top = 90, 136
    cw = min(max((cfg.chart_width - left - 10) / n_cols, 44), 120)
    ch = 26
    width = max(cfg.chart_width, left + cw * n_cols + 10)
    height = top + ch * n_rows + 12
    body = [f'<text class="title" x="8" y="20">{esc(title)}</text>']
    i = 0
    while i < len(groups):  # one band per run of columns from the same source
        j = i
        while j + 1 < len(groups) and groups[j + 1][:2] == groups[i][:2]:
            j += 1
        source, kind = groups[i][:2]
        x0, w = left + cw * i + 1, cw * (j - i + 1) - 2
        body.append(
            f'<g class="group" data-source="{esc(source)}" data-kind="{esc(kind)}">'
            f'<rect x="{x0:.1f}" y="{top - 22}" width="{w:.1f}" height="18" fill="{"#e8eef7" if kind == "dataset" else "#f4ebd9"}"/>'
            f'<text class="tick" x="{x0 + w / 2:.1f}" y="{top - 9}" text-anchor="middle"><title>{esc(kind)} {esc(source)}</title>'
            f"{esc(_cut(source, max(int(w / 7), 3)))}</text></g>"
        )
        i = j + 1
    for i, task in enumerate(h.tasks):
        cx = left + cw * (i + 0.5)
        rounds = groups[i][2]
        taught = f", taught in round{'s' if len(rounds) > 1 else ''} {', '.join(map(str, rounds))}" if rounds else ""
        body.append(
            f'<text class="tick" transform="translate({cx:.1f} {top - 30}) rotate(-35)" text-anchor="start">'
            f"<title>{esc(task)} (from {esc(groups[i][1])} {esc(groups[i][0])}{esc(taught)})</title>"
            f"{esc(_cut(task, cfg.heatmap_label_chars))}</text>"
        )
    for t in range(m.shape[0]):
        y = top + ch * t
        label = "before" if t == 0 else f"round {t}"
        body.append(f'<text class="tick" x="{left - 6}" y="{y + ch / 2 + 4:.1f}" text-anchor="end">{label}</text>')
        for i in range(len(h.tasks)):
            v = m[t, i]
            fill, ink = _heat_color(v)
            x = left + cw * i
            learned = t in groups[i][2]
            stroke = ' stroke="#d62728" stroke-width="2"' if learned else ' stroke="#ffffff" stroke-width="1"'
            body.append(
                f'<rect class="cell" x="{x:.1f}" y="{y}" width="{cw:.1f}" height="{ch}" fill="{fill}"{stroke}>'
                f"<title>{esc(h.tasks[i])} after {esc(label)}: {esc(fmt_number(v, 4))}</title></rect>"
                f'<text class="cell-text" x="{x + cw / 2:.1f}" y="{y + ch / 2 + 4:.1f}" text-anchor="middle" fill="{ink}">'
                f"{fmt_number(v) if not math.isfinite(v) else f'{v:.2f}'}</text>"
            )
    if m.shape[0] == 0:
        body.append(f'<text class="empty" x="{left}" y="{top + 16}">no evaluation yet</text>')
    return (
        f'<svg class="chart heatmap" id="{esc(chart_id)}" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">' + "".join(body) + "</svg>"
    )
