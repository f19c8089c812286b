"""Self-contained HTML renderings of the JSON reports (gate, validation), readable without any server.

No scripts, no CDN: one inline stylesheet, every value escaped.
"""

from __future__ import annotations

import html
import json
from typing import Any
from collections.abc import Iterable

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}.PASS,.ok{color:#106010;font-weight:bold}.FAIL,.bad{color:#a01010;font-weight:bold}
.INCONCLUSIVE,.WARN,.insufficient_data{color:#a06000;font-weight:bold}
.drift{color:#a01010;font-weight:bold}.no_drift{color:#106010;font-weight:bold}code{background:#f6f6f6;padding:0 .2rem}
"""


_STATUSES = ("PASS", "FAIL", "INCONCLUSIVE", "WARN", "drift", "no_drift", "insufficient_data")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return f"<code>{html.escape(json.dumps(value, default=str)[:500])}</code>"
    return html.escape(str(value))


def table(rows: Iterable[dict[str, Any]], columns: list[str] | None = None) -> str:
    rows = list(rows)
    if not rows:
        return "<p>none</p>"
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            css = f' class="{value}"' if value in _STATUSES else ""
            if value is True or value is False:
                css, value = (' class="ok"', "yes") if value else (' class="bad"', "no")
            cells.append(f"<td{css}>{_cell(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def page(title: str, sections: list[tuple[str, str]], summary: dict[str, Any]) -> str:
    summary_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td class=\"{html.escape(str(v))}\">{_cell(v)}</td></tr>"
        for k, v in summary.items())
    parts = [f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<table>{summary_rows}</table>"]
    parts += [f"<h2>{html.escape(heading)}</h2>{body}" for heading, body in sections]
    parts.append("</body></html>")
    return "".join(parts)


def gate_report_html(report: dict[str, Any], model: str) -> str:
    summary = {"verdict": report["verdict"], "metric": report["metric"], "holdout rows": report["n_holdout"],
               "non-inferiority margin": report["margin"], "confidence": report["confidence"],
               "champion version": report.get("champion_version") or "none (first model)"}
    metrics = [{"metric": name, "challenger": value,
                "champion": (report.get("champion_metrics") or {}).get(name, "")}
               for name, value in report["challenger_metrics"].items()]
    sections = [("Reasons", "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in report["reasons"]) + "</ul>"),
                ("Metrics", table(metrics)),
                ("Minimums and maximums", table(report["minimums"]))]
    if report.get("comparison"):
        sections.append(("Paired comparison", table([report["comparison"]])))
    if report.get("slices"):
        sections.append(("Slices", table(report["slices"], ["column", "value", "n", "status", "improvement",
                                                            "ci_low", "ci_high", "reason"])))
    return page(f"Evaluation gate: {model}", sections, summary)


def validation_report_html(report: dict[str, Any], model: str) -> str:
    summary = {"status": "PASS" if report["success"] else ("WARN" if report["policy"] == "warn" else "FAIL"),
               "policy": report["policy"], "rows checked": report["rows"],
               "rows quarantined": report.get("quarantined_rows", 0)}
    rows = [{"expectation": r["expectation"], "kwargs": r["kwargs"], "ok": r["success"],
             "unexpected": r.get("unexpected_count", ""), "unexpected %": r.get("unexpected_percent", ""),
             "sample of unexpected values": r.get("partial_unexpected_list", "")} for r in report["results"]]
    return page(f"Data validation: {model}", [("Expectations", table(rows))], summary)


def svg_bars(chart: dict[str, Any], *, width: int = 360, height: int = 110) -> str:
    """Reference (grey) vs current (blue) shares per bin or category as an inline SVG; no script, no CDN."""
    labels = chart.get("categories") or [f"{a:.3g}" for a in chart.get("edges", [])[:-1]]
    reference, current = chart.get("reference", []), chart.get("current", [])
    if not labels:
        return ""
    top = max([*reference, *current, 1e-9])
    slot = width / len(labels)
    bar = max(slot / 2 - 1, 0.5)
    shapes = []
    for index, (label, ref, cur) in enumerate(zip(labels, reference, current, strict=True)):
        x = index * slot
        for offset, value, colour in ((0, ref, "#9a9a9a"), (bar, cur, "#2f6db5")):
            h = (height - 14) * value / top
            shapes.append(f'<rect x="{x + offset:.1f}" y="{height - 14 - h:.1f}" width="{bar:.1f}" '
                          f'height="{h:.1f}" fill="{colour}"><title>{html.escape(str(label))}: '
                          f'{"reference" if offset == 0 else "current"} {value:.1%}</title></rect>')
    first, last = html.escape(str(labels[0])), html.escape(str(labels[-1]))
    axis = (f'<text x="0" y="{height - 2}" font-size="9">{first}</text>'
            f'<text x="{width}" y="{height - 2}" font-size="9" text-anchor="end">{last}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img">{"".join(shapes)}{axis}</svg>')


def drift_report_html(report: dict[str, Any], model: str) -> str:
    settings = report["settings"]
    summary = {"status": report["status"],
               "dataset drift": report["dataset_drift"], "performance drift": report.get("performance_drift"),
               "share of drifted features": f"{report['share']:.0%} (threshold {settings['drift_share']:.0%})",
               "reference rows": report["n_reference"], "current rows": report["n_current"],
               "backend": settings["backend"], "correction": settings["correction"],
               "significance level": settings["p_value"], "min effect size": settings["min_effect_size"]}
    summary.update({k: v for k, v in (report.get("context") or {}).items()})
    legend = ('<p><span style="color:#9a9a9a">&#9632; reference</span> '
              '<span style="color:#2f6db5">&#9632; current</span></p>')
    rows, charts = [], []
    for item in report["features"]:
        rows.append({"feature": item["feature"], "kind": item["kind"], "status": item["status"],
                     "test": item["test"], "p-value": item["p_value"], "adjusted": item["p_adjusted"],
                     "effect": item["effect_metric"], "effect size": item["effect_size"],
                     "null rate ref -> cur": f"{item['null_rate_reference']:.1%} -> {item['null_rate_current']:.1%}",
                     "reason": item["reason"]})
        if item.get("chart"):
            charts.append(f"<h3>{html.escape(item['feature'])} <small>({html.escape(item['status'])})</small></h3>"
                          + svg_bars(item["chart"]))
    sections = [("Reasons", "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in report["reasons"]) + "</ul>"),
                ("Features", table([{k: ("" if v is None else v) for k, v in r.items()} for r in rows]))]
    # "drift: yes" is bad news: shown as text, not in the green of a passed check.
    prediction = report.get("prediction")
    if prediction:
        shown = {k: ("yes" if v else "no") if k == "drift" else v for k, v in prediction.items() if k != "chart"}
        sections.append(("Prediction drift (model scores)", table([shown]) + svg_bars(prediction.get("chart", {}))))
    if report.get("performance"):
        shown = {k: ("yes" if v else "no") if k == "drift" else v for k, v in report["performance"].items()}
        sections.append(("Performance drift", table([shown])))
    sections.append(("Distributions", legend + "".join(charts)))
    return page(f"Drift report: {model}", sections, summary)
