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
.INCONCLUSIVE,.WARN{color:#a06000;font-weight:bold}code{background:#f6f6f6;padding:0 .2rem}
"""


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
            css = f' class="{value}"' if value in ("PASS", "FAIL", "INCONCLUSIVE", "WARN") else ""
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
