"""The insight pages' charts as data: geometry for SVG the templates draw (docs/console.md "Insights").

No chart library ships: the server computes every coordinate from the query runner's numbers, and every
label (event names, breakdown values from capture) stays text that Jinja escapes. Pure: answers come in.
"""

import math

W, H = 800, 280
W_H = (W, H)
TILE = (520, 230)  # a dashboard tile's chart: smaller, so its labels stay readable at half the width
PAD_L, PAD_R, PAD_T, PAD_B = 52, 14, 12, 26
COLORS = 10  # .c0 ... .c9 in console.css
MAX_X_TICKS = 8  # per 800 units of width
BREAKDOWN_NULL = "$$_posthog_breakdown_null_$$"
BREAKDOWN_OTHER = "$$_posthog_breakdown_other_$$"


def breakdown_label(value):
    """A breakdown value as people read it (the runner's sentinels as words)."""
    if value == BREAKDOWN_OTHER or value == "Other":
        return "Other"
    if value in (BREAKDOWN_NULL, None, ""):
        return "(none)"
    if isinstance(value, list):
        return ", ".join(breakdown_label(v) for v in value)
    return str(value)


def number(v, digits=2):
    """1234 -> '1,234'; 2.5 -> '2.5'; None -> '–'."""
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}".rstrip("0").rstrip(".")
    return f"{int(v):,}"


def short_number(v):
    """Axis labels: 1200 -> '1.2k', 3400000 -> '3.4M'."""
    a = abs(v)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.1f}".rstrip("0").rstrip(".") + suffix
    return number(round(v, 2))


def duration(seconds):
    """Seconds as '1h 2m', '3m 5s', '12s'."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m}m"
    if m:
        return f"{m}m {s}s"
    return f"{s}s"


def percent(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}".rstrip("0").rstrip(".") + "%"


def nice_step(span, count=4):
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `count` ticks over span."""
    if span <= 0:
        return 1
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def y_axis(lo, hi, top_px, bottom_px):
    """(scale function, ticks [{y, text}]) for values lo..hi drawn between bottom_px and top_px."""
    lo, hi = min(lo, 0), max(hi, 0)
    if hi == lo:
        hi = lo + 1
    step = nice_step(hi - lo)
    lo_t = math.floor(lo / step) * step
    hi_t = math.ceil(hi / step) * step

    def y(v):
        return round(bottom_px - (v - lo_t) / (hi_t - lo_t) * (bottom_px - top_px), 1)

    ticks, v = [], lo_t
    while v <= hi_t + step / 2:
        ticks.append({"y": y(v), "text": short_number(v)})
        v += step
    return y, ticks


def _short(labels):
    """Day labels of one year ("3-Nov-2026") lose the year on the axis ("3 Nov"): it is in the table."""
    parts = [str(t).split("-") for t in labels]
    if all(len(p) == 3 and p[2].isdigit() and len(p[2]) == 4 for p in parts) and len({p[2] for p in parts}) == 1:
        return [f"{p[0]} {p[1]}" for p in parts]
    return labels


def x_ticks(labels, xs, width=W):
    """At most MAX_X_TICKS labels, evenly spaced back from the last one (always shown: it is "now")."""
    n = len(labels)
    if not n:
        return []
    every = max(1, math.ceil(n / max(2, round(MAX_X_TICKS * width / W))))
    picked = sorted(range(n - 1, -1, -every))
    labels = _short(labels)
    out = []
    for i in picked:
        anchor = "end" if i == n - 1 and n > 1 else ("start" if i == 0 and n > 1 else "middle")
        out.append({"x": xs[i], "text": labels[i], "anchor": anchor})
    return out


def _at(serie, labels, i):
    """The bucket's label for a point's title: a compare series has its own dates."""
    own = serie.get("labels") or labels
    return own[i] if i < len(own) else ""


def time_chart(labels, series, display="line", suffix="", size=(W, H)):
    """A line or bar chart over time buckets.

    series: [{"label", "data": [numbers], "color": int, "previous": bool, "labels"?}]; previous (compare) series are
    dashed lines, or a second, paler stack of bars beside the current one. Returns the SVG's geometry:
    {width, height, plot, yticks, xticks, lines: [{d, color, dashed, points}], bars: [{x, y, w, h, color, title}]}.
    """
    n = len(labels)
    width, height = size
    x0, x1, top, bottom = PAD_L, width - PAD_R, PAD_T, height - PAD_B
    bar = display == "bar"
    if bar:
        stacks = {False: [0.0] * n, True: [0.0] * n}
        for s in series:
            for i, v in enumerate(s["data"][:n]):
                stacks[bool(s.get("previous"))][i] += max(0.0, float(v or 0))
        hi = max([*stacks[False], *stacks[True], 0])
        lo = 0
    else:
        values = [float(v or 0) for s in series for v in s["data"][:n]]
        hi, lo = max(values, default=0), min(values, default=0)
    y, yticks = y_axis(lo, hi, top, bottom)
    for t in yticks:
        t["text"] += suffix
    out = {"width": width, "height": height, "plot": {"x0": x0, "x1": x1, "top": top, "bottom": bottom},
           "yticks": yticks, "lines": [], "bars": [], "zero": y(0)}
    if bar:
        slot = (x1 - x0) / max(1, n)
        has_prev = any(s.get("previous") for s in series)
        bw = slot * 0.8 / (2 if has_prev else 1)
        xs = [round(x0 + slot * (i + 0.5), 1) for i in range(n)]
        base = {False: [0.0] * n, True: [0.0] * n}
        for s in series:
            prev = bool(s.get("previous"))
            for i, v in enumerate(s["data"][:n]):
                v = max(0.0, float(v or 0))
                if not v:
                    continue
                left = x0 + slot * i + slot * 0.1 + (bw if prev else 0)
                y_top, y_bottom = y(base[prev][i] + v), y(base[prev][i])
                base[prev][i] += v
                out["bars"].append({"x": round(left, 1), "y": y_top, "w": round(max(bw - 1, 1), 1),
                                    "h": round(max(y_bottom - y_top, 0.5), 1), "color": s["color"] % COLORS,
                                    "previous": prev, "title": f"{s['label']} · {_at(s, labels, i)}: {number(v)}{suffix}"})
    else:
        step = (x1 - x0) / (n - 1) if n > 1 else 0
        xs = [round(x0 + step * i, 1) if n > 1 else round((x0 + x1) / 2, 1) for i in range(n)]
        dots = n <= 120  # hover titles on each point; past that the line alone reads better
        for s in series:
            pts = [(xs[i], y(float(v or 0)), v) for i, v in enumerate(s["data"][:n])]
            d = " ".join(("M" if i == 0 else "L") + f"{px},{py}" for i, (px, py, _) in enumerate(pts))
            out["lines"].append({
                "d": d, "color": s["color"] % COLORS, "dashed": bool(s.get("previous")),
                "points": [{"x": px, "y": py, "title": f"{s['label']} · {_at(s, labels, i)}: {number(v)}{suffix}"}
                           for i, (px, py, v) in enumerate(pts)] if dots or n == 1 else []})
    out["xticks"] = x_ticks(labels, xs, width)
    return out


def value_bars(rows):
    """Horizontal bars of one total per row: [{"label", "value", "color"}] -> rows with a width in % of the max."""
    top = max((float(r["value"] or 0) for r in rows), default=0) or 1
    return [{**r, "pct": round(100 * max(0.0, float(r["value"] or 0)) / top, 1)} for r in rows]


def funnel_chart(groups, step_names, size=(W, H)):
    """Vertical step bars: groups = [{"label", "color", "counts": [per step]}] (one group without a breakdown).

    Each step is a column; a group's bar is its count as a share of its own first step (the pale part
    above it is the drop-off so far). Returns {width, height, columns: [{x, name, bars: [...]}], yticks}.
    """
    n = len(step_names)
    width, height = size
    x0, x1, top, bottom = PAD_L, width - PAD_R, PAD_T, height - PAD_B
    y, yticks = y_axis(0, 100, top, bottom)
    for t in yticks:
        t["text"] += "%"
    slot = (x1 - x0) / max(1, n)
    g = max(1, len(groups))
    bw = slot * 0.7 / g
    columns = []
    for k, name in enumerate(step_names):
        bars = []
        for j, grp in enumerate(groups):
            first = grp["counts"][0] if grp["counts"] else 0
            count = grp["counts"][k] if k < len(grp["counts"]) else 0
            pct = 100 * count / first if first else 0
            left = x0 + slot * k + slot * 0.15 + bw * j
            bars.append({"x": round(left, 1), "w": round(max(bw - 2, 1), 1), "y": y(pct),
                         "h": round(y(0) - y(pct), 1), "color": grp["color"] % COLORS, "pct": pct, "count": count,
                         "title": f"{grp['label']} · step {k + 1} {name}: {number(count)} ({percent(pct)})"})
        columns.append({"x": round(x0 + slot * (k + 0.5), 1), "name": name, "n": k + 1, "bars": bars})
    return {"width": width, "height": height, "plot": {"x0": x0, "x1": x1, "top": top, "bottom": bottom},
            "yticks": yticks, "columns": columns, "full_y": y(100), "zero": y(0)}


def funnel_steps(steps):
    """The table under a funnel: per step its count, conversion from the first and the previous step,
    the drop-off and the conversion times (the runner's seconds)."""
    out = []
    first = steps[0]["count"] if steps else 0
    for k, s in enumerate(steps):
        prev = steps[k - 1]["count"] if k else s["count"]
        out.append({
            "n": k + 1, "name": s.get("custom_name") or s["name"], "count": s["count"],
            "from_first": 100 * s["count"] / first if first else 0,
            "from_previous": 100 * s["count"] / prev if prev else 0,
            "dropped": prev - s["count"] if k else 0,
            "median": s.get("median_conversion_time"), "average": s.get("average_conversion_time"),
        })
    return out


def retention_table(results):
    """The triangle: per cohort its size and, per period, the share of it that came back (a shade class
    h0-h10 by tenths), blank past the window. Also the mean per period, weighted by cohort size."""
    n = len(results)
    rows, sums, sizes = [], [], []
    for k, r in enumerate(results):
        size = r["values"][0]["count"] if r["values"] else 0
        cells = []
        for j, v in enumerate(r["values"]):
            if k + j >= n:
                cells.append(None)
                continue
            pct = 100 * v["count"] / size if size else 0.0
            cells.append({"count": v["count"], "pct": pct, "shade": min(10, int(pct // 10)) if size else 0})
            while len(sums) <= j:
                sums.append(0.0)
                sizes.append(0.0)
            sums[j] += v["count"]
            sizes[j] += size
        rows.append({"label": r["label"], "date": r["date"], "size": size, "cells": cells})
    means = [100 * s / z if z else 0.0 for s, z in zip(sums, sizes)]
    periods = [v["label"] for v in results[0]["values"]] if results else []
    return {"rows": rows, "periods": periods, "means": means}


def change(current, previous, increase_bad=False):
    """The tile's change from the previous period: {text, good} or None."""
    if current is None or previous in (None, 0):
        return None
    pct = round(100 * (current - previous) / previous)
    good = None if pct == 0 else ((pct < 0) if increase_bad else (pct > 0))
    return {"text": f"{pct:+d}%", "good": good}
