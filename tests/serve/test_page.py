"""The live page in a real headless browser (Debian's Chromium, driven by Playwright): it loads,
shows images and updates its rate. Skipped, with the reason, where no browser is installed."""

import shutil

import pytest

from tests.serve.test_service import served, student_onnx  # noqa: F401  (the fixture)

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")


def test_the_page_generates_and_counts(student_onnx, tmp_path):  # noqa: F811
    with served(student_onnx) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(url + "/")
            # images arrive: every one of the 32 slots holds a decoded PNG with its seed
            page.wait_for_function(
                "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth === 16)",
                timeout=30_000,
            )
            shown = "document.getElementById('rate').textContent"
            rate = float(page.wait_for_function(f"Number({shown}) > 0 && {shown}", timeout=30_000).json_value())
            seeds = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => Number(i.dataset.seed))")
            page.wait_for_timeout(2500)
            later = float(page.text_content("#rate"))
            assert rate > 0 and later > 0 and later != rate  # the rate is live, not a one-off
            assert len(set(seeds)) == 32 and page.text_content("#error") == "" and not errors
            assert "batches up to 16" in page.text_content("#about")
            page.screenshot(path=str(tmp_path / "page.png"))
        finally:
            browser.close()
