"""Stage lines of long jobs: INFO log lines always, a line per stage only on a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from shopperlake.core.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_line_per_stage_and_the_log_gets_info(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    caplog.set_level(logging.INFO, logger="shopperlake.progress")
    out = Terminal()
    progress = Progress("ingest", out)
    with progress.stage("events") as stage:
        stage.rows = 1234
    with progress.stage("items"):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "[ingest] 1. events ..."
    assert lines[1].startswith("[ingest] 1. events done in ") and ", 1,234 rows (job " in lines[1]
    assert lines[2] == "[ingest] 2. items ..." and "2. items done in" in lines[3]
    logged = [r.getMessage() for r in caplog.records]
    assert logged[0].startswith("ingest stage 1 events done in ") and logged[0].endswith(
        " s, 1,234 rows"
    )
    assert logged[1].startswith("ingest stage 2 items done in ")


def test_no_terminal_or_ci_means_log_lines_only(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="shopperlake.progress")
    plain = io.StringIO()
    with Progress("train", plain).stage("fit"):
        pass
    monkeypatch.setenv("CI", "true")
    terminal_in_ci = Terminal()
    with pytest.raises(ValueError, match="boom"), Progress("train", terminal_in_ci).stage("score"):
        raise ValueError("boom")
    assert plain.getvalue() == "" and terminal_in_ci.getvalue() == ""
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("train stage 1 fit done in ")
    assert messages[1].startswith("train stage 1 score failed after ")
