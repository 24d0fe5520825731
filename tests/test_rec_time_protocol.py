"""The recommender's time protocol: tuning never sees the holdout."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError
from shopperlake.rec.job import TimeWindows, time_windows
from shopperlake.rec.params import RecParams

D = dt.date


def params(holdout: int, validation: int) -> RecParams:
    base = RecParams.from_config(load_config("local").section("recommender"))
    return dataclasses.replace(base, holdout_days=holdout, validation_days=validation)


def test_validation_window_ends_where_the_holdout_starts() -> None:
    # As of 2024-04-30 with 14 + 14 days: holdout (04-16, 04-30], validation (04-02, 04-16];
    # the tuned choices are served as of 04-02 and judged on purchases up to 04-16.
    assert time_windows(D(2024, 4, 30), params(14, 14)) == TimeWindows(
        D(2024, 4, 2), D(2024, 4, 16), D(2024, 4, 30)
    )
    assert time_windows(D(2024, 4, 30), params(1, 1)) == TimeWindows(
        D(2024, 4, 28), D(2024, 4, 29), D(2024, 4, 30)
    )


@pytest.mark.parametrize(("holdout", "validation"), [(14, 0), (14, -3), (0, 14)])
def test_windows_that_would_let_tuning_see_the_holdout_are_refused(
    holdout: int, validation: int
) -> None:
    # validation_days -3 would serve the validation as of 04-19, three days into the holdout.
    with pytest.raises(ConfigError, match="must be non-empty and end on or before the holdout"):
        time_windows(D(2024, 4, 30), params(holdout, validation))
