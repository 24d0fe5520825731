"""The analysts' HTML report, opened in a real headless Chromium (Debian's, driven by Selenium
from the browser venv of `make browser`). The report of a lake with models and scores is
checked in tests/test_churn_e2e.py on that module's lake; here: an empty lake and bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shopperlake.report.job import main as report
from tests.conftest import job_args

ROOT = Path(__file__).resolve().parents[1]
BROWSER_PY = ROOT / ".browser" / "venv" / "bin" / "python"
SECTIONS = {
    "lake-health": "Lake health",
    "segments": "Segments",
    "churn": "Churn",
    "retention": "Retention targets",
    "recommender": "Recommendations",
    "sequences": "Next items (SASRec)",
    "anomalies": "Anomalies",
    "forecasts": "Demand forecasts",
    "returns": "Return risk",
}


def render(page: Path) -> dict[str, Any]:
    """What headless Chromium rendered of ``page`` (tests/browser_check.py)."""
    if not BROWSER_PY.exists():
        pytest.fail("no browser venv: run `make browser` (make test does)")
    done = subprocess.run(
        [str(BROWSER_PY), str(ROOT / "tests" / "browser_check.py"), str(page)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_renders(seen: dict[str, Any], images: set[str]) -> None:
    """Every section rendered with its heading, every image loaded, no console error."""
    assert {s["id"]: s["heading"] for s in seen["sections"]} == SECTIONS
    assert all(s["height"] > 30 for s in seen["sections"]), seen["sections"]
    assert {i["file"] for i in seen["images"]} == images
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
    assert seen["console_errors"] == []


def test_report_of_an_empty_lake_says_what_to_run(lake_root: str, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert report(job_args(lake_root, "--as-of", "2024-05-01", "--output", str(out))) == 0
    page = out / "2024-05-01" / "report.html"
    seen = render(page)
    assert seen["title"] == "ShopperLake report as of 2024-05-01"
    assert_renders(seen, set())
    missing = {s["id"]: " ".join(s["missing"]) for s in seen["sections"]}
    assert "run ./submit.sh build_segments --as-of D" in missing["segments"]
    assert "run ./submit.sh train --model churn --as-of D" in missing["churn"]
    assert "run ./submit.sh detect_anomalies --as-of D" in missing["anomalies"]
    assert "run ./submit.sh forecast --as-of D --level category" in missing["forecasts"]
    assert "run ./submit.sh train --model returns --as-of D" in missing["returns"]
    assert "run ./submit.sh train --model sasrec --as-of D" in missing["sequences"]


def test_report_needs_an_as_of_date(lake_root: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(job_args(lake_root)) == 2
    assert "report needs --as-of YYYY-MM-DD" in capsys.readouterr().err
