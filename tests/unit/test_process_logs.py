"""A child process's log in one line, the way start-up failures quote it."""

from __future__ import annotations

from pathlib import Path

from deploylab.services.runtime.processes import log_excerpt


def test_log_excerpt_quotes_the_last_lines_each_cut_to_300_characters(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("one\n  two  \n" + "x" * 400 + "\n")
    assert log_excerpt(log, 2) == f"log {log}: two | {'x' * 300}"


def test_log_excerpt_keeps_the_lines_asked_for_and_falls_back_to_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    log.write_text("I started\nE0101 model failed\nI still running\n")
    errors = log_excerpt(log, 8, keep=lambda line: line.startswith("E"))
    assert errors == f"log {log}: E0101 model failed"
    assert log_excerpt(log, 1, keep=lambda line: "nothing" in line) == f"log {log}: I still running"


def test_log_excerpt_says_when_there_is_no_log(tmp_path: Path) -> None:
    assert log_excerpt(tmp_path / "missing.log", 5) == f"no log at {tmp_path / 'missing.log'}"
