"""A self-contained HTML validation report a person can open from a quarantine folder.

No scripts, no external assets: it must render offline, from a file attached to a flow
run or mailed around. Every value is escaped, since column names and data values in it
come from whoever produced the batch.
"""

from __future__ import annotations

from html import escape

from mlops.contracts import ExpectationOutcome, ValidationReport, Verdict

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem;margin:0 0 .5rem}
table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dt{font-weight:600}
code{font-size:.9em}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:600}
tr.failed{background:#fff5f5}
.verdict{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;color:#fff}
.accepted{background:#1a7f37}.accepted-with-quarantined-rows{background:#9a6700}
.rejected{background:#cf222e}
"""


def render_report_html(report: ValidationReport) -> str:
    """The report as one HTML page; failed expectations are listed first."""
    verdict = escape(report.verdict.value)
    facts = [
        ("dataset", report.dataset),
        ("batch", report.batch.sha256),
        ("source", report.batch.uri),
        ("rows", f"{report.batch.rows:,}"),
        ("window", f"{report.batch.start} .. {report.batch.end}"),
        ("suite", report.suite),
        ("policy", report.policy),
        ("bad / clean rows", f"{report.bad_rows:,} / {report.clean_rows:,}"),
        ("passed", f"{len(report.outcomes) - len(report.failed)} of {len(report.outcomes)}"),
        ("duration", f"{report.duration_s:.2f} s"),
    ]
    if report.accepted is not None:
        facts.append(("accepted batch", f"{report.accepted.sha256} ({report.accepted.uri})"))
    if report.quarantine_dir:
        facts.append(("quarantine", report.quarantine_dir))
    ordered = sorted(report.outcomes, key=lambda o: o.success)
    title = f"Validation {report.dataset} {report.batch.sha256[:12]}"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>Validation of <code>{escape(report.dataset)}</code> "
            f'<span class="verdict {verdict}">{verdict}</span></h1>',
            "<dl>",
            *(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts),
            "</dl>",
            "<table><thead><tr><th>expectation</th><th>column</th><th>result</th>"
            "<th>unexpected</th><th>observed</th><th>example keys</th><th>error</th>"
            "</tr></thead><tbody>",
            *(_row(o) for o in ordered),
            "</tbody></table>",
            _footer(report),
            "</body></html>",
        ]
    )


def _row(outcome: ExpectationOutcome) -> str:
    status = (
        '<span class="pass">pass</span>' if outcome.success else '<span class="fail">FAIL</span>'
    )
    unexpected = f"{outcome.unexpected_count:,}"
    if outcome.unexpected_percent is not None:
        unexpected += f" ({outcome.unexpected_percent:.2f}%)"
    cells = [
        f"<code>{escape(outcome.name)}</code><br><small>{escape(outcome.expectation)}</small>",
        escape(outcome.column or ""),
        status,
        escape(unexpected),
        escape(outcome.observed or ""),
        "<br>".join(escape(k) for k in outcome.example_keys),
        escape(outcome.error or ""),
    ]
    css = "" if outcome.success else ' class="failed"'
    return f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _footer(report: ValidationReport) -> str:
    if report.verdict is Verdict.ACCEPTED:
        return "<p>The batch goes on to the feature stage.</p>"
    where = escape(report.quarantine_dir or "the quarantine folder")
    if report.verdict is Verdict.REJECTED:
        return (
            f"<p>Nothing from this batch went on. Fix the data file named in "
            f"<code>{where}/manifest.json</code>, then replay the folder.</p>"
        )
    return (
        f"<p>{report.clean_rows:,} clean rows went on; the {report.bad_rows:,} bad rows wait in "
        f"<code>{where}/rows.parquet</code> with the expectations each failed.</p>"
    )
