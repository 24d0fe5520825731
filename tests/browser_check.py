"""Open an HTML file in headless Chromium (Debian's, through its ChromeDriver) with Selenium and
print what rendered as JSON: each section (id, heading, height), each image (file, loaded,
natural size) and the browser console's errors.

Runs in the browser venv (``make browser``: Selenium's pins are not the stack's), started by
tests/test_report.py: ``.browser/venv/bin/python tests/browser_check.py report.html``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main(page: str) -> int:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.set_window_size(1280, 1000)
        driver.get(Path(page).resolve().as_uri())
        found = driver.execute_script(
            """
            const sections = [...document.querySelectorAll('section[data-section]')].map(s => ({
              id: s.id, heading: s.querySelector('h2')?.textContent ?? null,
              height: s.getBoundingClientRect().height,
              tables: s.querySelectorAll('table').length,
              missing: [...s.querySelectorAll('.missing')].map(m => m.textContent)}));
            const images = [...document.images].map(i => ({
              file: i.dataset.file, complete: i.complete, width: i.naturalWidth,
              height: i.naturalHeight, section: i.closest('section')?.id ?? null}));
            return {title: document.title, sections, images};
            """
        )
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        found["console_errors"] = errors
        found["browser"] = driver.capabilities.get("browserVersion")
        print(json.dumps(found))
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
