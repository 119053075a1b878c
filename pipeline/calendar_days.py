"""Calendar arithmetic on numpy columns of (year, month, day): which triples are real dates, and their
day numbers since 1970-01-01, for the fixed-width fast paths of the date transforms and the
birthdate rule (no Python date objects, no parser)."""

from __future__ import annotations

import numpy as np

_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def real_dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether each (year, month, day) is a date of the proleptic Gregorian calendar, year >= 1."""
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    in_year = (month >= 1) & (month <= 12)
    limit = _DAYS_IN_MONTH[np.where(in_year, month, 0)] - ((month == 2) & ~leap)
    return in_year & (day >= 1) & (day <= limit) & (year >= 1)


def days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 to each real date (int64; H. Hinnant's ``days_from_civil``)."""
    year = year.astype(np.int64) - (month <= 2)
    era = np.floor_divide(year, 400)
    of_era = year - era * 400
    of_year = (153 * ((month.astype(np.int64) + 9) % 12) + 2) // 5 + day - 1
    return era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468
