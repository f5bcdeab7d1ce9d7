"""report.md: the same content as Markdown, with the figures as PNG files beside it (plots/)."""

from __future__ import annotations

from .claims import VERDICT_RULE_NOTE, VERDICT_RULES
from .document import ReportContent
from .plots import Plot
from .tables import Table, claim_table

PLOTS_DIR = "plots"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: Table, level: str = "##") -> str:
    lines = [f"{level} {table.title}", ""] + ([f"_{table.note}_", ""] if table.note else [])
    lines.append("| " + " | ".join(_cell(c) or " " for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    if not table.rows:
        lines.append("| no data in this run |" + " |" * (len(table.columns) - 1))
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def plot_path(plot: Plot) -> str:
    return f"{PLOTS_DIR}/{plot.key}.png"


def render_plot(plot: Plot) -> str:
    return f"## {plot.title}\n\n![{plot.title}]({plot_path(plot)})\n\n_{plot.caption}_\n"


def render_markdown(content: ReportContent) -> str:
    parts = [f"# {content.title}", ""]
    parts += [f"**{line}**\n" for line in content.decision]
    parts.append(render_table(content.decision_table))
    parts += [line + "\n" for line in content.summary]
    if content.flags:
        parts.append("**Cross-check mismatches (over 5%):**\n")
        parts += [f"- {flag}" for flag in content.flags]
        parts.append("")
    else:
        parts.append("No cross-check mismatch: every checked window agrees within 5%.\n")
    parts.append("## Claims checked\n")
    parts.append(f"_{VERDICT_RULE_NOTE}_\n")
    for claim in content.claims:
        parts.append(f"### {claim.title}: **{claim.verdict}**\n")
        parts.append(f"_Claim:_ {claim.statement} _Source:_ {claim.source}.\n")
        parts.append(
            f"_Measured:_ {claim.summary}. _Verdict:_ {claim.verdict}: {VERDICT_RULES[claim.verdict]}.\n"
        )
        parts.append(render_table(claim_table(claim), level="####"))
    for block in content.blocks:
        parts.append(render_table(block) if isinstance(block, Table) else render_plot(block))
    if content.notes:
        parts.append("## Notes\n")
        parts += [f"- {note}" for note in content.notes]
    return "\n".join(parts) + "\n"
