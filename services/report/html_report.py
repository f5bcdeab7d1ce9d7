"""report.html: one self-contained file (inline CSS, plots as base64 PNG) that opens anywhere."""

from __future__ import annotations

import base64
from html import escape

from .claims import VERDICT_RULE_NOTE, VERDICT_RULES
from .document import ReportContent
from .plots import Plot
from .tables import Table, claim_table

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #1d1d1f;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } tr:nth-child(even) td { background: #fafafa; }
.note { color: #555; max-width: 70rem; }
.flag { background: #fde8e8; border: 1px solid #e0a0a0; padding: .6rem 1rem; }
.ok { background: #e8f6ea; border: 1px solid #a6d4ae; padding: .6rem 1rem; }
.decision { background: #eef4fb; border: 1px solid #a8c4e4; padding: .2rem 1rem; }
.verdict { font-weight: 600; } .confirmed { color: #1a7f37; } .partly-confirmed { color: #9a6700; }
.refuted { color: #cf222e; } .not-measured { color: #666; }
figure { margin: 1rem 0 2rem; } figcaption { color: #555; max-width: 70rem; } img { max-width: 100%; }
"""


def render_table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = (
        "\n".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
        )
        or f'<tr><td colspan="{len(table.columns)}">no data in this run</td></tr>'
    )
    return (
        f'<section id="table-{escape(table.key)}"><h2>{escape(table.title)}</h2>'
        + (f'<p class="note">{escape(table.note)}</p>' if table.note else "")
        + f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></section>"
    )


def render_plot(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode()
    return (
        f'<figure id="plot-{escape(plot.key)}"><h2>{escape(plot.title)}</h2>'
        f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(plot.caption)}</figcaption></figure>"
    )


def render_html(content: ReportContent) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(content.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(content.title)}</h1>",
    ]
    parts.append('<div class="decision" id="decision">')
    parts += [f"<p><strong>{escape(line)}</strong></p>" for line in content.decision]
    parts.append(render_table(content.decision_table) + "</div>")
    parts += [f"<p>{escape(line)}</p>" for line in content.summary]
    if content.flags:
        items = "".join(f"<li>{escape(flag)}</li>" for flag in content.flags)
        parts.append(
            '<div class="flag" id="flags"><strong>Cross-check mismatches (over 5%)</strong>'
            f"<ul>{items}</ul></div>"
        )
    else:
        parts.append(
            '<div class="ok" id="flags">No cross-check mismatch: every checked window agrees within 5%.</div>'
        )

    parts.append('<section id="claims"><h2>Claims checked</h2>')
    parts.append(f'<p class="note">{escape(VERDICT_RULE_NOTE)}</p>')
    for claim in content.claims:
        css = claim.verdict.replace(" ", "-")
        parts.append(
            f'<h3 id="claim-{escape(claim.key)}">{escape(claim.title)}: '
            f'<span class="verdict {css}">{escape(claim.verdict)}</span></h3>'
            f'<p class="note"><em>Claim:</em> {escape(claim.statement)} '
            f"<em>Source:</em> {escape(claim.source)}.</p>"
            f"<p><em>Measured:</em> {escape(claim.summary)}. "
            f"<em>Verdict:</em> {escape(claim.verdict)}: {escape(VERDICT_RULES[claim.verdict])}.</p>"
        )
        parts.append(render_table(claim_table(claim)).replace("<h2>", "<h4>").replace("</h2>", "</h4>"))
    parts.append("</section>")

    for block in content.blocks:
        parts.append(render_table(block) if isinstance(block, Table) else render_plot(block))
    if content.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in content.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
