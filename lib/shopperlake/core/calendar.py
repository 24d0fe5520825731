"""A shop's closing calendar, shared by the forecasts and the feed monitor.

Closing days are ``MM-DD`` strings (that day every year: ``12-25``) or ``YYYY-MM-DD`` strings
(that day only: a bank holiday, a stock-take). On such a day the shop sells nothing, so a
forecast says 0 and a feed monitor expects nothing; the shop knows them in advance.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from shopperlake.core.errors import ConfigError


def parse_closed_days(value: Any, key: str) -> tuple[str, ...]:
    """The config ``key``'s list of ``MM-DD`` / ``YYYY-MM-DD`` days, sorted; ``None`` is
    none. Anything else stops with a :class:`ConfigError` naming the key and the value."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of MM-DD or YYYY-MM-DD days")
    out = []
    for day in value:
        text = day.isoformat() if isinstance(day, dt.date) else str(day)
        try:
            if len(text) == 5:
                dt.date.fromisoformat(f"2000-{text}")  # a leap year: 02-29 is a day
            elif len(text) == 10:
                dt.date.fromisoformat(text)
            else:
                raise ValueError(text)
        except ValueError:
            raise ConfigError(f"{key}: '{day}' is not a MM-DD or YYYY-MM-DD day") from None
        out.append(text)
    return tuple(sorted(out))


def closed_mask(days: Any, closed: tuple[str, ...] | list[str]) -> np.ndarray:
    """True for each of ``days`` on which the shop is closed: ``closed`` holds ``MM-DD``
    (every year) and ``YYYY-MM-DD`` (that day only) strings."""
    stamps = pd.DatetimeIndex(pd.to_datetime(pd.Series(days)))
    if not closed or len(stamps) == 0:
        return np.zeros(len(stamps), dtype=bool)
    wanted = set(closed)
    full = stamps.strftime("%Y-%m-%d")
    month_day = stamps.strftime("%m-%d")
    return np.asarray(full.isin(wanted) | month_day.isin(wanted), dtype=bool)
