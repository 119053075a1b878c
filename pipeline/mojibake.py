"""Double-encoded text: UTF-8 bytes that a system once read as Latin-1 (or Windows-1252, MySQL's
``latin1``) and stored again as UTF-8. ``Müller`` becomes ``MÃ¼ller``, ``José`` ``JosÃ©``, ``’``
``â€™``, and Japanese text a run of ``æ—¥æœ¬``. The classic source is a MySQL ``latin1`` column that
an application filled with UTF-8, later converted to ``utf8mb4``. Cognito would take such a name as
it is, and the user would see it garbled in every email and screen.

Two steps, so that the common column costs a byte scan and no Python per value:

* ``candidates``: the rows whose bytes hold the pattern every such text has, a character U+00C2-U+00F4
  (a UTF-8 lead byte read as Latin-1) followed by one that a continuation byte reads as. A ``memchr``
  passes most columns, one numpy pass finds the rows; in real names the pattern is rare.
* ``repaired``: the judgement, value by value on those rows only, is ftfy's (``fix_encoding``), the
  maintained library for exactly this. Taking the characters back to bytes and decoding them as UTF-8
  is not enough on its own: the Slovak surname ``KRÍŽ`` (Í, Ž: bytes CD 8E) decodes as valid UTF-8
  too, and ftfy knows it for a real name; it also repairs text double-encoded twice, and a value of
  which only a part was (``JÃ¼rgen Müller``).

Not found: a double-encoded ``à`` whose no-break space was later turned into a space (``FÃ bregas``,
as the ``collapse_spaces`` transform makes of ``FÃ\u00a0bregas``: a mapping puts ``fix_mojibake``
first). ftfy cannot read most of those back either, and taking a space as the second character would
make every ``José Pérez`` a candidate (ftfy: ~6-20 µs a value).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.arrowtext import has_bytes, single_chunk, string_array

# What a continuation byte (0x80-0xBF) reads as in Windows-1252 or Latin-1 starts with one of these
# bytes in UTF-8: C2 (U+0080-U+00BF), C5 (Š Œ Ž š œ ž Ÿ), C6 (ƒ), CB (ˆ ˜), E2 (€ ‚ „ … † ‡ ‰ ‹ ‘ ’ “ ”
# • – — ™ ›)
_SECOND_LEAD_BYTES = b"\xc2\xc5\xc6\xcb\xe2"
_SECOND_LEAD = np.zeros(256, dtype=bool)
_SECOND_LEAD[list(_SECOND_LEAD_BYTES)] = True


def repaired(value: str) -> str | None:
    """``value`` with its double encoding undone, or None when ftfy finds none."""
    from ftfy import fix_encoding  # ~40 ms to import: only once a column holds a candidate

    fixed = fix_encoding(value)
    return fixed if fixed != value else None


def candidates(values: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows that may hold double-encoded text (True means ``repaired`` is worth asking): a character
    U+00C2-U+00F4 (bytes C3 82-C3 B4) followed by one whose UTF-8 starts with a byte of
    ``_SECOND_LEAD_BYTES``. Found in the data buffer, no per-value pass; a column holding none of those
    bytes (most German or Japanese text) is passed by a ``memchr`` of each (~0.04 ms per 50,000 names,
    where the scan takes ~1.4 ms)."""
    if not has_bytes(values, _SECOND_LEAD_BYTES):
        return np.zeros(len(values), dtype=bool)
    arr, bounds, raw = single_chunk(values)
    found = np.zeros(len(arr), dtype=bool)
    piece = raw[bounds[0]: bounds[-1]]
    if len(piece) < 3:
        return found
    at = np.flatnonzero(piece[:-2] == 0xC3)
    second, third = piece[at + 1], piece[at + 2]
    at = at[(second >= 0x82) & (second <= 0xB4) & _SECOND_LEAD[third]] + bounds[0]
    found[np.searchsorted(bounds, at, side="right") - 1] = True
    return found


def repairs(values: pd.Series | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """The rows (ascending) whose values ``repaired`` undoes, and what it makes of each: ``candidates``
    picks the rows, ftfy judges them one by one."""
    rows = np.flatnonzero(candidates(values))
    if not len(rows):
        return rows, []
    texts = string_array(values).take(pa.array(rows)).to_pylist()
    found = [(row, fixed) for row, text in zip(rows.tolist(), texts, strict=True)
             if text is not None and (fixed := repaired(text)) is not None]
    return np.array([row for row, _ in found], dtype=np.int64), [fixed for _, fixed in found]


def double_encoded(values: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per row, whether the value is (or holds) double-encoded text that ``repaired`` can undo."""
    found = np.zeros(len(values), dtype=bool)
    found[repairs(values)[0]] = True
    return found
