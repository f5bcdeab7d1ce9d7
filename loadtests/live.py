"""The sweep's live view (rich): overall and current-point progress, and a summary of finished points.

A sweep runs for minutes; the user sees what is being measured, how far it is, and every result the
moment it lands — including a cross-check flag, so a broken measurement is noticed before the end.
"""

from __future__ import annotations

import time
from typing import Any

from deploylab.services.measure.results import PointResult, RampResult
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

SUMMARY_ROWS = 12


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


class SweepDisplay:
    """Progress bars plus a rolling table of the last finished points; a no-op sink when disabled."""

    def __init__(self, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.overall: TaskID = self.progress.add_task("sweep", total=1.0)
        self.current: TaskID = self.progress.add_task("", total=1.0)
        self.rows: list[tuple[str, ...]] = []
        self.point_id = ""
        self.point_started = time.monotonic()
        self.live: Live | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> SweepDisplay:
        if self.enabled:
            self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(None, None, None)
            self.live = None

    def render(self) -> Group:
        table = Table(title="finished points", expand=False, show_edge=False, pad_edge=False)
        table.add_column("model", no_wrap=True, overflow="ellipsis", max_width=20)
        for column in ("path", "loop"):
            table.add_column(column, no_wrap=True)
        for column in ("load", "req/s", "p50 ms", "p99 ms"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("check", no_wrap=True)
        for row in self.rows[-SUMMARY_ROWS:]:
            table.add_row(*row)
        return Group(self.progress, table)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    # -- events -------------------------------------------------------------------------------
    def plan(self, total_s: float) -> None:
        self.progress.update(self.overall, total=max(total_s, 1.0), completed=0)

    def overall_done(self, seconds: float) -> None:
        """Estimated seconds of planned work done so far (the overall bar)."""
        self.progress.update(self.overall, completed=seconds)
        self._refresh()

    def phase(self, description: str, seconds: float | None = None) -> None:
        """A new piece of work: `seconds` sizes its bar (None: indeterminate)."""
        self.point_id = ""
        self.progress.reset(self.current, total=seconds, description=description)
        if not self.enabled:
            self.console.print(description)
        self._refresh()

    def describe(self, text: str) -> None:
        """New words for the current bar, same work (no reset)."""
        self.progress.update(self.current, description=text)
        self._refresh()

    def session_message(self, message: dict[str, Any], estimates: dict[str, float]) -> None:
        """A `progress` line from the Locust session: live numbers for the running window."""
        if message.get("type") != "progress":
            return
        point_id = str(message.get("id", ""))
        if point_id != self.point_id:
            self.point_id, self.point_started = point_id, time.monotonic()
            self.progress.reset(self.current, total=estimates.get(point_id))
        text = f"{point_id} [{message.get('phase', '')}]"
        if "current_rps" in message:
            text += f" {message['current_rps']} req/s, p50 {message.get('p50_ms') or '–'} ms"
            if message.get("failures"):
                text += f", [red]{message['failures']} failures[/red]"
        elapsed = time.monotonic() - self.point_started
        self.progress.update(self.current, description=text, completed=elapsed)
        self._refresh()

    def point(self, result: PointResult) -> None:
        load = f"{result.arrival_rate:.0f}/s" if result.arrival_rate else f"{result.users}u"
        check = "[red]MISMATCH[/red]" if result.flags else "ok" if result.checks else "–"
        if result.failures:
            check = f"[red]{result.failures} fail[/red] {check}"
        self.rows.append(
            (
                result.triton_model,
                result.path.replace("gateway", "gw"),
                result.loop,
                load,
                f"{result.throughput_rps:.1f}",
                _ms(result.latency_ms.p50),
                _ms(result.latency_ms.p99),
                check,
            )
        )
        if not self.enabled:
            self.console.print(
                f"  {result.id}: {result.throughput_rps:.1f} req/s, p50 {_ms(result.latency_ms.p50)} ms, "
                f"p99 {_ms(result.latency_ms.p99)} ms, {result.failures} failures, check {check}"
            )
        self._refresh()

    def ramp(self, result: RampResult) -> None:
        for step in result.steps:
            self.point(step)
        if result.flags and self.rows:
            self.rows[-1] = (*self.rows[-1][:-1], "[red]MISMATCH[/red]")

    def note(self, text: str) -> None:
        self.console.print(text)
