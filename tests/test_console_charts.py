"""The insight charts' geometry (phlite/console/charts.py), pure: round ticks, every mark inside the plot,
bars stacked to their totals, the funnel's shares and the retention triangle (docs/console.md "Insights")."""

import re

import pytest

from phlite.console import charts


@pytest.mark.parametrize("span,step", [(7, 2), (10, 2.5), (100, 25), (1234, 500), (0.3, 0.1), (1, 0.25), (0, 1)])
def test_nice_steps(span, step):
    assert charts.nice_step(span) == pytest.approx(step)


def test_line_chart_marks_stay_inside_the_plot_and_ticks_are_readable():
    labels = [f"{d}-Nov-2026" for d in range(1, 31)]
    series = [{"label": "a", "data": [i * 3 for i in range(30)], "color": 0},
              {"label": "b", "data": [0] * 29 + [200], "color": 11, "previous": True}]
    c = charts.time_chart(labels, series)
    p = c["plot"]
    for line in c["lines"]:
        for x, y in re.findall(r"[ML]([\d.]+),([\d.]+)", line["d"]):
            assert p["x0"] <= float(x) <= p["x1"] and p["top"] <= float(y) <= p["bottom"]
    assert [line["color"] for line in c["lines"]] == [0, 1] and c["lines"][1]["dashed"]
    assert c["yticks"][-1]["text"] == "200" and len(c["yticks"]) == 5
    ticks = c["xticks"]
    assert len(ticks) <= charts.MAX_X_TICKS and ticks[-1]["text"] == "30 Nov" and ticks[-1]["anchor"] == "end"
    gaps = {round(b["x"] - a["x"], 1) for a, b in zip(ticks, ticks[1:])}
    assert max(gaps) - min(gaps) < 0.5  # evenly spaced
    assert c["lines"][0]["points"][29]["title"] == "a · 30-Nov-2026: 87"


def test_bar_chart_stacks_to_the_totals():
    series = [{"label": "a", "data": [1, 2, 0], "color": 0}, {"label": "b", "data": [3, 0, 5], "color": 1}]
    c = charts.time_chart(["x", "y", "z"], series, "bar")
    assert len(c["bars"]) == 4  # zeros draw nothing
    scale = (c["zero"] - c["plot"]["top"]) / float(c["yticks"][-1]["text"])  # pixels per unit
    for bucket, total in (("x", 4), ("y", 2), ("z", 5)):
        bars = [b for b in c["bars"] if f" · {bucket}: " in b["title"]]
        assert sum(b["h"] for b in bars) == pytest.approx(total * scale, abs=0.3)
        assert max(b["y"] + b["h"] for b in bars) == pytest.approx(c["zero"], abs=0.2)  # stacked from the axis


def test_funnel_shares_and_steps_table():
    c = charts.funnel_chart([{"label": "all", "color": 0, "counts": [200, 50, 10]}], ["a", "b", "c"])
    assert [round(b["pct"], 1) for col in c["columns"] for b in col["bars"]] == [100.0, 25.0, 5.0]
    steps = charts.funnel_steps([{"name": "a", "count": 200}, {"name": "b", "count": 50,
                                                                  "median_conversion_time": 30},
                                 {"name": "c", "count": 10}])
    assert [(s["from_first"], s["from_previous"], s["dropped"]) for s in steps] == [
        (100, 100, 0), (25, 25, 150), (5, 20, 40)]


def test_retention_triangle_and_weighted_mean():
    results = [{"label": f"Day {k}", "date": f"2026-11-0{k + 1}", "values": [
        {"count": c, "label": f"Day {j}"} for j, c in enumerate(row)]}
        for k, row in enumerate([[10, 5, 2], [20, 4, 0], [5, 0, 0]])]
    t = charts.retention_table(results)
    assert [[cell and round(cell["pct"]) for cell in r["cells"]] for r in t["rows"]] == [
        [100, 50, 20], [100, 20, None], [100, None, None]]
    assert [round(m, 1) for m in t["means"]] == [100.0, 30.0, 20.0]  # (5+4)/(10+20), 2/10
    assert t["rows"][0]["cells"][1]["shade"] == 5


def test_numbers_durations_and_changes():
    assert charts.number(1234567) == "1,234,567" and charts.number(2.50) == "2.5" and charts.number(None) == "–"
    assert charts.short_number(1500) == "1.5k" and charts.short_number(2_000_000) == "2M"
    assert charts.duration(65) == "1m 5s" and charts.duration(3725) == "1h 2m" and charts.duration(9.4) == "9s"
    assert charts.change(120, 100) == {"text": "+20%", "good": True}
    assert charts.change(120, 100, increase_bad=True) == {"text": "+20%", "good": False}
    assert charts.change(5, 0) is None and charts.change(100, 100)["good"] is None
    assert charts.breakdown_label("$$_posthog_breakdown_other_$$") == "Other"
    assert charts.breakdown_label("$$_posthog_breakdown_null_$$") == "(none)"


def test_a_trend_too_big_to_draw_shows_its_totals():
    from phlite.console import insight_forms, insight_views

    form = insight_forms.trends_form({"s0.event": "x", "breakdown": "b"}.get)
    labels = [f"h{i}" for i in range(2000)]
    response = {"hasMore": True, "results": [
        {"action": {"order": 0, "name": "x"}, "label": f"v{k}", "breakdown_value": f"v{k}", "labels": labels,
         "data": [1] * 2000, "count": 2000.0} for k in range(25)]}
    view = insight_views.trends(response, form)
    assert view["too_many"] and view["total_mode"] and "chart" not in view
    assert [b["value"] for b in view["bars"]] == [2000.0] * 25
    small = insight_views.trends({**response, "results": response["results"][:15]}, form)  # 30,000 points
    assert not small["too_many"] and small["chart"]["lines"] and not small["table_intervals"]
    assert insight_views.sql_cell("x" * 5000)["text"] == "x" * insight_views.MAX_CELL + "…"
