"""Render the report dict: a self-contained HTML page, a terminal summary, and the files on disk."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from rich.console import Console
from rich.table import Table

from pipeline.report.charts import COLORS, bar_chart, stacked_bar

_TOP_RULES = 5


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pipeline.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda n: "—" if n is None else f"{n:,}"
    env.filters["pct"] = lambda x: f"{x * 100:.1f}%"
    env.filters["pct2"] = lambda x: f"{x * 100:.2f}%"
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)
    return env


def outcome_parts(report: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """How the source rows split: valid/rejected for a plan, final outcomes once loaded."""
    c = report["counts"]
    if report.get("load") is None:
        return [("valid", "valid", c["valid"]), ("rejected", "rejected", c["rejected"])]
    done = c["imported"] + c["skipped"] + c["failed"]
    return [("imported", "imported", c["imported"]), ("skipped", "skipped (already in pool)", c["skipped"]),
            ("failed", "failed (Cognito)", c["failed"]), ("rejected", "rejected", c["rejected"]),
            ("pending", "valid, no outcome", max(c["valid"] - done, 0))]


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one HTML file that opens offline: inline CSS and SVG, no scripts, no links out."""
    counts = report["counts"]
    load = report.get("load")
    charts = {
        "outcomes": stacked_bar(outcome_parts(report)),
        "by_reason": bar_chart([(r["reason"], r["rows"]) for r in report["by_reason"]],
                               title="Rejected rows by rule", color=COLORS["rejected"]),
        "by_column": bar_chart(_rows_by_column(report["by_rule"]), title="Rule breaks by column",
                               color=COLORS["rejected"]),
        "by_message": bar_chart([(m["message"], m["rows"]) for m in load["failed_by_message"]],
                                title="Failed rows by Cognito message", color=COLORS["failed"])
        if load else None,
    }
    template = _environment().get_template("report.html.j2")
    return template.render(r=report, c=counts, load=load, charts=charts, colors=COLORS,
                           notes=report.get("notes") or [])


def render_terminal(report: Mapping[str, Any], *, width: int = 100) -> str:
    """A short plain-text summary for the terminal: counts, top rules, the gate, where the files are."""
    c, g, load = report["counts"], report["gate"], report.get("load")
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None,
                      no_color=True, highlight=False, emoji=False)
    console.print(f"Tenant {report['tenant']}  run {report['run_id']}  ({report['generated_at']})",
                  markup=False)
    console.print(f"Source rows {c['source_rows']:,}   valid {c['valid']:,}   rejected {c['rejected']:,}",
                  markup=False)
    for note in report.get("notes") or []:
        console.print(f"NOTE: {note}", markup=False)
    if load is not None:
        console.print(f"Imported {c['imported']:,}   skipped {c['skipped']:,}   failed {c['failed']:,}   "
                      f"accounting {'OK' if load['accounting_ok'] else 'DOES NOT ADD UP'}", markup=False)
    verdict = "PASSED" if g["passed"] else "FAILED"
    console.print(f"Gate {verdict}: reject rate {g['reject_rate'] * 100:.2f}% "
                  f"(threshold {g['reject_threshold'] * 100:.2f}%)", markup=False)
    if report["by_rule"]:
        table = Table(title=None, show_edge=False, box=None, pad_edge=False, header_style="")
        table.add_column("rows", justify="right")
        table.add_column("column")
        table.add_column("rule")
        table.add_column("examples", overflow="ellipsis", no_wrap=True)
        for rule in report["by_rule"][:_TOP_RULES]:
            table.add_row(f"{rule['rows']:,}", rule["column"] or "(row)", rule["reason"],
                          ", ".join(rule["examples"][:3]))
        more = len(report["by_rule"]) - _TOP_RULES
        console.print("Top rejection rules" + (f" (and {more} more in the report)" if more > 0 else "") + ":",
                      markup=False)
        console.print(table, markup=False)
    if load is not None and load["failed_by_message"]:
        console.print("Failed by Cognito message:", markup=False)
        for m in load["failed_by_message"][:_TOP_RULES]:
            console.print(f"  {m['rows']:>8,}  {m['message']}", markup=False)
    for name, path in report["files"].items():
        console.print(f"{name}: {path}", markup=False)
    return buf.getvalue()


def write_reports(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (each replaced atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    _write_atomic(paths["json"], json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(paths["html"], render_html(report))
    return paths


def _rows_by_column(by_rule: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Reject lines per column: a row breaking two rules on one column counts under both."""
    totals: dict[str, int] = {}
    for rule in by_rule:
        key = rule["column"] or "(row)"
        totals[key] = totals.get(key, 0) + rule["rows"]
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def _write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all; a copy the disk could not hold is not left beside it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
