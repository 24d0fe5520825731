"""Point-in-time date arithmetic every capability shares."""

from __future__ import annotations

import datetime as dt


def end_of_day(as_of: dt.date) -> dt.datetime:
    """The first instant after the as-of day (UTC): events must be strictly before it."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
