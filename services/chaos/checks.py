"""What a chaos scenario promises, as data, and the pure functions that judge a recorded run.

A promise is a `CheckSpec`: its name (as docs/reliability.md states it) and conditions on the run —
which requests to look at (`Select`: a window between marks in time, status classes), and what their
statuses (`Statuses`, `RetryAfter`), latencies (`Latency`) or the run's numbers (`Bound`) must be.
`judge` turns the conditions and a `Record` (outcomes, probe answers, marks, numbers) into `Check`s that
say what was observed. Nothing here touches a process or the network, so a recorded run can be judged
again, and the judging tested, without a server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .load import LoadSummary, Outcome, percentile


@dataclass(frozen=True)
class Ref:
    """A bound read from the run's numbers when it is judged: `scale` x numbers[name] + `plus`."""

    name: str
    scale: float = 1.0
    plus: float = 0.0


Limit = float | Ref


@dataclass
class Record:
    """What a run left to judge: the load's outcomes, probe series, named instants and numbers."""

    outcomes: list[Outcome]
    probes: dict[str, list[Outcome]] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)

    def value(self, limit: Limit) -> float:
        """The limit in numbers; NaN when it names a number the run did not produce."""
        if isinstance(limit, Ref):
            return limit.scale * self.numbers.get(limit.name, math.nan) + limit.plus
        return float(limit)


def matches(outcome: Outcome, cls: str) -> bool:
    """Whether `outcome` is of class `cls`: `200`, `503 shutting_down`, `5xx`, `refused` or `unanswered`."""
    if cls == "unanswered":
        return outcome.status is None
    if len(cls) == 3 and cls.endswith("xx"):
        return outcome.status is not None and outcome.status // 100 == int(cls[0])
    return cls in (outcome.kind, str(outcome.status), outcome.transport_error)


def _of(outcome: Outcome, classes: frozenset[str]) -> bool:
    return any(matches(outcome, c) for c in classes)


@dataclass(frozen=True)
class Select:
    """Which requests a condition looks at: from a series, sent in a window between marks, by class.

    A window that names a mark the run never reached selects nothing (a recovery that never came
    leaves no requests "after recovery" to be served).
    """

    source: str = "load"  # the load's outcomes, or a probe series ("readyz", "after")
    after: str | None = None  # sent after this mark + after_s
    after_s: float = 0.0
    before: str | None = None  # sent before this mark
    spanning: str | None = None  # in flight at this mark: sent before it, answered after it
    classes: frozenset[str] | None = None

    def pick(self, record: Record) -> list[Outcome]:
        named = [m for m in (self.after, self.before, self.spanning) if m is not None]
        if any(m not in record.marks for m in named):
            return []
        picked = record.outcomes if self.source == "load" else record.probes.get(self.source, [])
        if self.after is not None:
            picked = [o for o in picked if o.sent_at > record.marks[self.after] + self.after_s]
        if self.before is not None:
            picked = [o for o in picked if o.sent_at < record.marks[self.before]]
        if self.spanning is not None:
            at = record.marks[self.spanning]
            picked = [o for o in picked if o.sent_at < at < o.finished_at]
        if self.classes is not None:
            picked = [o for o in picked if _of(o, self.classes)]
        return picked


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if math.isfinite(seconds) else "n/a"


def _limits(record: Record, at_least: Limit | None, at_most: Limit | None, unit: str = "") -> str:
    def say(limit: Limit) -> str:
        value = record.value(limit)
        if not math.isfinite(value):
            return f"{limit.name if isinstance(limit, Ref) else limit} not known"
        return _ms(value) if unit == "ms" else f"{value:g}"

    parts = ([f"at least {say(at_least)}"] if at_least is not None else []) + (
        [f"at most {say(at_most)}"] if at_most is not None else []
    )
    return f" ({', '.join(parts)})" if parts else ""


def _within(value: float, record: Record, at_least: Limit | None, at_most: Limit | None) -> bool:
    low = -math.inf if at_least is None else record.value(at_least)
    high = math.inf if at_most is None else record.value(at_most)
    return low <= value <= high  # NaN anywhere: False


class Condition(Protocol):
    def judge(self, record: Record) -> tuple[bool, str]:
        """Whether the record meets the condition, and what was observed."""
        ...


@dataclass(frozen=True)
class Accounted:
    """Every request of the load got exactly one answer or a clean refusal; none was lost."""

    def judge(self, record: Record) -> tuple[bool, str]:
        s = LoadSummary.of(record.outcomes)
        passed = s.lost == 0 and s.answered + s.refused == s.sent
        return passed, f"sent {s.sent}, answered {s.answered}, refused {s.refused}, lost {s.lost}"


@dataclass(frozen=True)
class Statuses:
    """The selection is not empty, holds `only` these classes, and at least `share` of it (and one) `some`."""

    select: Select = Select()
    only: frozenset[str] | None = None
    some: frozenset[str] | None = None
    share: float = 0.0

    def judge(self, record: Record) -> tuple[bool, str]:
        picked = self.select.pick(record)
        unexpected = LoadSummary.of([o for o in picked if self.only and not _of(o, self.only)]).by_kind
        hits = len(picked) if self.some is None else sum(_of(o, self.some) for o in picked)
        enough = hits > 0 and hits >= self.share * len(picked)
        observed = f"{len(picked)} requests: {LoadSummary.of(picked).by_kind or 'none'}"
        return bool(picked) and not unexpected and enough, observed + (
            f", unexpected: {unexpected}" if unexpected else ""
        )


@dataclass(frozen=True)
class Latency:
    """At least `min_count` latencies; their percentile `q` (every one, when q is None) within the limits."""

    select: Select = Select()
    q: float | None = None
    at_least: Limit | None = None
    at_most: Limit | None = None
    min_count: int = 1

    def judge(self, record: Record) -> tuple[bool, str]:
        values = [o.latency_s for o in self.select.pick(record)]
        if not values:
            return self.min_count == 0, "no requests"
        low, high = (min(values), max(values)) if self.q is None else (percentile(values, self.q),) * 2
        passed = len(values) >= self.min_count and _within(low, record, self.at_least, None)
        passed = passed and _within(high, record, None, self.at_most)
        stat = f"{_ms(low)}-{_ms(high)}" if self.q is None else f"p{self.q:g} {_ms(low)}"
        return passed, f"{len(values)} requests, {stat}" + _limits(record, self.at_least, self.at_most, "ms")


@dataclass(frozen=True)
class Bound:
    """One of the run's numbers lies within the limits (a number the run did not produce fails)."""

    number: str
    at_least: Limit | None = None
    at_most: Limit | None = None

    def judge(self, record: Record) -> tuple[bool, str]:
        value = record.numbers.get(self.number, math.nan)
        passed = _within(value, record, self.at_least, self.at_most)
        shown = f"{value:.4g}" if math.isfinite(value) else "not measured"
        return passed, f"{self.number} {shown}" + _limits(record, self.at_least, self.at_most)


@dataclass(frozen=True)
class RetryAfter:
    """The selection is not empty and every answer in it carries Retry-After."""

    select: Select

    def judge(self, record: Record) -> tuple[bool, str]:
        picked = self.select.pick(record)
        total = len(Select(source=self.select.source).pick(record))
        every = all(o.retry_after for o in picked)
        share = len(picked) / max(total, 1)
        observed = f"{len(picked)} of {total} ({share:.0%}), all with Retry-After: {every}"
        return bool(picked) and every, observed


@dataclass(frozen=True)
class CheckSpec:
    """A promise: its name and the conditions that must all hold; skipped when `needs` was not measured."""

    name: str
    conditions: tuple[Condition, ...]
    needs: str | None = None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: str


def judge(record: Record, checks: Sequence[CheckSpec]) -> list[Check]:
    """Each applicable promise with its verdict and what was observed."""
    results = []
    for spec in checks:
        if spec.needs is not None and spec.needs not in record.numbers:
            continue
        verdicts = [c.judge(record) for c in spec.conditions]
        results.append(Check(spec.name, all(p for p, _ in verdicts), "; ".join(o for _, o in verdicts)))
    return results


# -- numbers derived from a record ------------------------------------------------------------------
_STATS = ("count", "share", "rate", "p50", "p99", "min", "max")


@dataclass(frozen=True)
class Measure:
    """A number from the selected requests: `count`, `share` (of its series), `rate` (per second of
    load), or a latency statistic (`p50`, `p99`, `min`, `max`); times `scale`, divided by numbers[per]."""

    name: str
    select: Select
    stat: str
    scale: float = 1.0
    per: str | None = None

    def __post_init__(self) -> None:
        if self.stat not in _STATS:
            raise ValueError(f"unknown statistic {self.stat!r}; choose from {', '.join(_STATS)}")

    def measure(self, record: Record) -> float:
        picked = self.select.pick(record)
        latencies = [o.latency_s for o in picked]
        value = {
            "count": lambda: float(len(picked)),
            "share": lambda: len(picked) / max(len(Select(source=self.select.source).pick(record)), 1),
            "rate": lambda: len(picked) / max(record.numbers.get("load_s", math.nan), 1e-9),
            "p50": lambda: percentile(latencies, 50),
            "p99": lambda: percentile(latencies, 99),
            "min": lambda: min(latencies, default=math.nan),
            "max": lambda: max(latencies, default=math.nan),
        }[self.stat]()
        per = 1.0 if self.per is None else max(record.numbers.get(self.per, math.nan), 1e-9)
        return value * self.scale / per


@dataclass(frozen=True)
class Interval:
    """Seconds from one mark to another (NaN when the run never reached either)."""

    name: str
    start: str
    end: str

    def measure(self, record: Record) -> float:
        return record.marks.get(self.end, math.nan) - record.marks.get(self.start, math.nan)


@dataclass(frozen=True)
class LastFailure:
    """Seconds from a mark until the last failed request sent after it was answered (NaN, or 0 with
    `none_is_zero`, when none failed). Failed: no answer, a 5xx or a 404 — a 429 is admission doing
    its job, not the fault showing."""

    name: str
    mark: str
    none_is_zero: bool = False

    def measure(self, record: Record) -> float:
        at = record.marks.get(self.mark)
        if at is None:
            return math.nan
        failed = [o.finished_at for o in record.outcomes if o.sent_at > at and _failed(o)]
        return max(failed) - at if failed else (0.0 if self.none_is_zero else math.nan)


def _failed(outcome: Outcome) -> bool:
    return outcome.status is None or outcome.status >= 500 or outcome.status == 404


class Derived(Protocol):
    @property
    def name(self) -> str: ...

    def measure(self, record: Record) -> float: ...


def derive(record: Record, measures: Sequence[Derived]) -> None:
    """Add each measure to the record's numbers, in order (a later one may divide by an earlier one)."""
    for m in measures:
        record.numbers[m.name] = m.measure(record)


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def rounded(numbers: dict[str, float]) -> dict[str, Any]:
    return {k: round(v, 4) if math.isfinite(v) else None for k, v in numbers.items()}
