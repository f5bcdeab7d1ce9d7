"""The HTML report as a person sees it: opened in a real headless Chromium, not parsed as text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploylab.services.report.writer import write_report

from tests.support.browser import headless_chromium

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "results_fixture"


def test_report_page_loads_every_image_without_console_errors(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    files = write_report(run_dir)
    with headless_chromium() as browser:
        browser.get(files.html.resolve().as_uri())
        assert browser.execute_script("return document.readyState") == "complete"
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        assert len(images) >= 4, images
        assert [alt for alt, complete, width in images if not (complete and width > 0)] == []
        assert browser.find_element("id", "claims").is_displayed()
        # The decision is what a reader sees first: the page's first table, inside the first screen.
        browser.set_window_size(1280, 900)
        first_table = browser.execute_script("return document.querySelector('table').closest('section').id")
        assert first_table == "table-decision"
        decision = browser.find_element("id", "decision")
        assert decision.is_displayed() and decision.rect["y"] < 900
        assert "Deploy:" in decision.text
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(int(height), 12000))
        screenshot = run_dir / "report.png"
        assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")


def test_a_broken_image_is_seen_by_the_browser(tmp_path: Path) -> None:
    """Negative control: the check above would notice an image the browser cannot draw."""
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><html><body><img alt="x" src="data:image/png;base64,AAAA"></body></html>')
    with headless_chromium() as browser:
        browser.get(page.as_uri())
        images = browser.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert images == [0]
