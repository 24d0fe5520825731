"""Where a long job is: each stage logged at INFO with its elapsed time (and rows, when the
stage counts them); on a terminal the CLI also shows a line per stage as it starts and ends.
Logs and CI (no terminal, or ``$CI`` set) get the INFO lines only."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("shopperlake.progress")


@dataclass
class Stage:
    name: str
    rows: int | None = None  # set by the stage when it knows its row count


class Progress:
    def __init__(self, job: str, stream: TextIO | None = None) -> None:
        self.job = job
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get(
            "CI"
        )
        self.started = time.monotonic()
        self.count = 0

    def _show(self, text: str) -> None:
        if self.tty:
            self.stream.write(f"[{self.job}] {text}\n")
            self.stream.flush()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        self.count += 1
        number, current = self.count, Stage(name)
        began = time.monotonic()
        self._show(f"{number}. {name} ...")
        try:
            yield current
        except BaseException:
            seconds = time.monotonic() - began
            log.info("%s stage %d %s failed after %.1f s", self.job, number, name, seconds)
            self._show(f"{number}. {name} failed after {seconds:.1f} s")
            raise
        seconds = time.monotonic() - began
        rows = "" if current.rows is None else f", {current.rows:,} rows"
        log.info("%s stage %d %s done in %.1f s%s", self.job, number, name, seconds, rows)
        total = time.monotonic() - self.started
        self._show(f"{number}. {name} done in {seconds:.1f} s{rows} (job {total:.0f} s)")
