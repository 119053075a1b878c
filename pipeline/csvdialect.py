"""Cognito's CSV dialect (import-rules fact 6, decisions in docs/local-cognito.md, U7).

- UTF-8 without a byte-order mark, ``\\n`` line ends, header first.
- Values are never quoted; a comma inside a value is written ``\\,``. No other escape exists: any other
  backslash is literal, so a value that *ends* in a backslash cannot be carried (``a\\`` followed by
  the separator would read as an escaped comma).
- Leading and trailing whitespace of every value is trimmed by Cognito.
- A value cannot contain a line break.

The writer (``pipeline.chunk``) and the local service's reader both use this module, so the two ends
agree by construction; the validator uses ``uncarriable`` to reject what cannot be written.
"""

from __future__ import annotations

import re

import pandas as pd

SEPARATOR = ","
ESCAPED_SEPARATOR = "\\,"
MAX_ROW_CHARS = 16_000
# "100 MB" (fact 12) read as 10^8 bytes, the smaller of its two readings: a file within it passes
# whichever AWS means (100 MiB would let files of 100,000,001 to 104,857,600 bytes through)
MAX_FILE_BYTES = 100_000_000
MAX_FILE_USERS = 500_000
MAX_VALUE_BYTES = 2048

_SPLIT = re.compile(r"(?<!\\),")
_UNCARRIABLE = r"[\r\n]|\\$"


def escape_series(values: pd.Series) -> pd.Series:
    """Escape a column for writing: commas become ``\\,``; NA becomes the empty string."""
    return values.astype("string").fillna("").str.replace(",", ESCAPED_SEPARATOR, regex=False)


def uncarriable(values: pd.Series) -> pd.Series:
    """True where a value cannot survive the dialect: a line break, or a trailing backslash."""
    return values.astype("string").fillna("").str.contains(_UNCARRIABLE, regex=True)


def encode_row(values: list[str]) -> str:
    """One CSV line (without its line end) from already-clean values."""
    return SEPARATOR.join(v.replace(",", ESCAPED_SEPARATOR) for v in values)


def decode_line(line: str) -> list[str]:
    """Split one line into trimmed values, turning ``\\,`` back into a comma."""
    return [v.replace(ESCAPED_SEPARATOR, ",").strip() for v in _SPLIT.split(line)]
