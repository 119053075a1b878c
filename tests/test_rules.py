"""The vectorised rules against their definitions, value by value, whichever path a rule takes.

Several rules judge a column from its bytes (offsets and data buffer) instead of running their regex:
a phone number, a birthdate, an all-digit number column, an all-printable-ASCII username column, a
username column without "@" or "+". Each is compared here with the plain definition (the documented
pattern, Python's calendar) over values built to sit on every edge, in every Arrow layout a column
can arrive in: one chunk, a slice (non-zero offset, bytes of other values around it), several chunks,
and with NA.
"""

from __future__ import annotations

import datetime as dt
import random
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline import mojibake
from pipeline.validation import rules

STRING = pd.StringDtype("pyarrow")

EDGES = {
    "phone": ["", "+", "+1", "+12", "+0123", "+10", "+123456789012345", "+1234567890123456", "++12",
              "+1+2", "1234", "+81 90", "+8190١٢", "n/a", "-", "+819012345678", " +8190", "+8190 ", "+",
              "+9", "+99", "+12a", "+\u0661\u0662\u0663"],
    "birthdate": ["", "01/01/2000", "02/29/2000", "02/29/1900", "02/29/2004", "02/30/2004", "04/31/2001",
                  "12/31/9999", "01/01/0000", "01/01/0001", "00/10/2000", "13/01/2000", "1/01/2000",
                  "01/1/2000", "01/01/20000", "01-01-2000", "01/01/200a", "０1/01/2000", "01/00/2000",
                  "11/31/2000", "12/32/2000", "06/15/1985x", "aa/bb/cccc", "//////////", "10/10/1010"],
    "number": ["", "0", "007", "-1", "1.5", "-0.25", "1e5", "12a", " 1", "+1", "٣", "1.", ".5", "--1",
               "99999999999999999999", "3"],
    "datetime": ["", "2024-03-01", "2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "0000-01-01",
                 "0001-01-01", "2024-03-01T10:00", "2024-03-01 10:00:59", "2024-03-01T24:00", "2024-03-01T23:60",
                 "2024-03-01T23:59:60", "2024-03-01T10:00:00.5", "2024-03-01T10:00:00.1234567Z",
                 "2024-03-01T10:00+23:59", "2024-03-01T10:00+24:00", "2024-03-01T10:00-0930", "1700000000",
                 "2024-03-01T10", "2024-3-01", "2024-03-01T10:00:00.", "２024-03-01"],
    "username": ["", "a", "a b", "user_1", "ユーザー", "tab\there", "x" * 128, "x" * 129, "é" * 64,
                 "é" * 65, "~!#", "a@b.c", "+8190", "new\nline", "\u00a0nbsp"],
    "email": ["", "a@b.co", "a@b", "a@@b.co", "@b.co", "a@b.c0", "a.b@c.jp", "a..b@c.jp",
              "x" * 64 + "@b.co", "x" * 65 + "@b.co", "y@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60
              + "." + "e" * 60 + ".jp", "ü@b.co", "a@ü.co", "a b@c.jp", "a@b.co@", "a@-b.co",
              "z@" + "b" * 50 + ("." + "c" * 50) * 4 + ".jp", "z@" + "b" * 50 + ("." + "c" * 50) * 3 + "."
              + "c" * 44 + ".jp", "z@" + "b" * 50 + ("." + "c" * 50) * 3 + "." + "c" * 45 + ".jp"],
    "text": ["", "Müller", "M\ufffdller", "\ufffd", "ab\ufffd", "\ufffdab", "\ufffc", "\ufffe", "\uffef",
             "ｶﾀｶﾅ", "０１", "\U0001f600", "\u00ef\u00bf\u00bd"],    # neighbours of U+FFFD's bytes EF BF BD
    "mojibake": ["", "Müller", "MÃ¼ller", "JosÃ©", "it\u00e2\u20ac\u2122s", "æ—¥æœ¬èªž", "Å\x81Ã³dÅº", "Ã©", "JOÃO",
                 "ÃÂ", "é\u00a0x", "plain", "StraÃŸe", "Ã", "Ã¼x", "日本語", "MÃ¼ller 日本", "Ã\x80", "Â", "Ã¼Ã",
                 "ÃÃ¼", "\u00c3\u00a9\u00c3", "Ã\u00a9", "Ã‚Â©", "cafÃ©s"],
    "control": ["", "ok", "a\x00b", "\x00", "\x1b[31m", "del\x7f", "\x1f", "\x0b", "\x0c", "\x01x", "tab\there",
                "new\nline", "cr\rx", " ", "~", "\u0085", "\u2400", "Müller", "\x7e\x80"],   # C1 NEL, pictures: allowed
}
# The byte pattern of pipeline.mojibake.candidates as characters: one of U+00C2-U+00F4 (UTF-8 C3 82-B4)
# followed by one whose UTF-8 starts with C2, C5, C6, CB or E2.
MOJIBAKE_PAIR = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0140-\u01bf\u02c0-\u02ff\u2000-\u2fff]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ALPHABET = "+0123456789/-.@ aZé\u3042"


def _random_values(seed: int, n: int = 400) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 18))) for _ in range(n)]


def _layouts(values: list[str | None]) -> dict[str, pd.Series]:
    """The same values as a string[pyarrow] Series in each Arrow layout a column can arrive in."""
    whole = pa.array(["pad-ding", "++@@//", *values, "tail\n+@\ufffd\x00"], type=pa.large_string())
    sliced = whole.slice(2, len(values))            # non-zero offset, other values' bytes around it
    half = len(values) // 2
    chunked = pa.chunked_array([sliced.slice(0, half), sliced.slice(half)])
    return {
        "one chunk": pd.Series(values, dtype=STRING),
        "sliced": pd.Series(pd.arrays.ArrowStringArray(sliced)),
        "two chunks": pd.Series(pd.arrays.ArrowStringArray(chunked)),
    }


def _date_ok(v: str) -> bool:
    if not re.fullmatch(rules.BIRTHDATE, v):
        return False
    try:
        dt.date(int(v[6:]), int(v[:2]), int(v[3:5]))
    except ValueError:                              # no such day, or year 0
        return False
    return True


def _username_ok(v: str) -> bool:
    matches = pc.match_substring_regex(pa.array([v]), f"^(?:{rules.USERNAME_CHARS})$")[0].as_py()
    return len(v) <= rules.USERNAME_MAX and matches


def _email_ok(v: str) -> bool:
    if not v.isascii():
        return rules._idn_email_ok(v)
    return bool(re.fullmatch(rules.EMAIL_ASCII, v)) and v.find("@") <= 64 and len(v) <= 254


def _datetime_ok(v: str) -> bool:
    """The local service's test (``datetime.fromisoformat``) within the ``DATETIME`` shapes."""
    if not re.fullmatch(rules.DATETIME, v):
        return False
    try:
        dt.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _in_range(v: str, low: float, high: float) -> bool:
    return not re.fullmatch(rules.INTEGER, v) or low <= int(v) <= high


CASES = {
    # rule under test, the definition per non-NA value (blank values pass every format rule), NA's answer
    "phone": (rules.valid_phone, lambda v: not v or bool(re.fullmatch(rules.E164, v)), False),
    "birthdate": (rules.valid_birthdate, lambda v: not v or _date_ok(v), False),
    "integer": (lambda s: rules.valid_number(s, True), lambda v: not v or bool(re.fullmatch(rules.INTEGER, v)),
                False),
    "decimal": (lambda s: rules.valid_number(s, False), lambda v: not v or bool(re.fullmatch(rules.DECIMAL, v)),
                False),
    "range": (lambda s: rules.number_in_range(s, 1, 500), lambda v: _in_range(v, 1, 500), True),
    "datetime": (rules.valid_datetime, lambda v: not v or _datetime_ok(v), False),
    "username": (rules.valid_username, lambda v: not v or _username_ok(v), False),
    "email": (rules.valid_email, lambda v: not v or _email_ok(v), False),
    "not an email": (lambda s: rules.not_like(s, rules.LOOKS_LIKE_EMAIL, needs=b"@"),
                     lambda v: not re.fullmatch(rules.LOOKS_LIKE_EMAIL, v), True),
    "not a phone": (lambda s: rules.not_like(s, rules.LOOKS_LIKE_PHONE, needs=b"+"),
                    lambda v: not re.fullmatch(rules.LOOKS_LIKE_PHONE, v), True),
    "boolean": (rules.valid_boolean, lambda v: v in ("", "true", "false"), False),
    "bytes": (lambda s: rules.within_bytes(s, 6), lambda v: len(v.encode()) <= 6, False),
    "decodable": (rules.decodable, lambda v: "\ufffd" not in v, True),
    "no control": (rules.no_control_characters, lambda v: not CONTROL.search(v), True),
    "no mojibake pair": (lambda s: ~mojibake.candidates(s), lambda v: not MOJIBAKE_PAIR.search(v), True),
}
EDGE_SET = {"phone": "phone", "birthdate": "birthdate", "integer": "number", "decimal": "number",
            "range": "number", "datetime": "datetime", "username": "username", "email": "email",
            "not an email": "username",
            "not a phone": "phone", "boolean": "number", "bytes": "username", "decodable": "text",
            "no control": "control", "no mojibake pair": "mojibake"}


def _check(case: str, values: list[str | None]) -> None:
    assert len(values) >= 2
    rule, definition, na_answer = CASES[case]
    want = np.array([na_answer if v is None else bool(definition(v)) for v in values])
    for layout, series in _layouts(values).items():
        got = rule(series)
        wrong = [values[i] for i in np.flatnonzero(got != want)]
        assert not wrong, f"{case} ({layout}) judges these values wrongly: {wrong!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_agrees_with_its_definition_on_edge_values(case: str) -> None:
    _check(case, EDGES[EDGE_SET[case]])


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_agrees_with_its_definition_with_na_and_random_values(case: str) -> None:
    _check(case, [*EDGES[EDGE_SET[case]], None, *_random_values(7), None])


@pytest.mark.parametrize("case, values", [
    ("phone", ["+819012345678", "+14155550100", "", None, "+442071234567"]),   # only "+" and digits
    ("integer", ["1667315885", "", None, "0", "42"]),                          # only digits
    ("range", ["1", "", None, "500", "501", "0"]),
    ("username", ["hwatanabe1", "MYamamoto2", "", None, "x" * 129]),           # printable ASCII only
    ("username", ["hwatanabe1", "", None]),
    ("not an email", ["hwatanabe1", "", None, "user+tag"]),                    # no "@": regex skipped
    ("not a phone", ["hwatanabe1", "", None, "a@b.co"]),                       # no "+": regex skipped
    ("decodable", ["Müller", "", None, "ｶﾀｶﾅ"]),                               # no U+FFFD: no per-value test
    ("no control", ["Müller", "", None, "tab\there", "a\nb"]),                  # bytes < 0x20, none a control
    ("no control", ["Müller", "", None, "ok"]),                                # no byte < 0x20 at all
    ("no mojibake pair", ["Müller", "", None, "José", "Ærø"]),                  # no second lead byte: memchr
    ("no mojibake pair", ["Müller’s", "", None, "José «x»", "ä’"]),             # C3 and C2/E2 bytes: the scan
])
def test_byte_level_paths_agree_with_the_definition(case: str, values: list[str]) -> None:
    """Columns made so that the rule takes its byte-level shortcut (the random ones above rarely do)."""
    _check(case, values)


def test_control_characters_are_found_among_random_values() -> None:
    rng = random.Random(11)
    alphabet = "ab é\u3042\t\n\x00\x1b\x7f\x1f\x85"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(400)]
    _check("no control", [*values, None])


def test_double_encoded_names_are_found_and_real_ones_are_not() -> None:
    """Random names, and the same names double-encoded through Latin-1 or Windows-1252, once or twice:
    every double-encoded one is found, and the transform gives back the name; names as they are stay
    as they are, the uppercase Slovak KRÍŽ (whose bytes decode as UTF-8 too) among them."""
    from pipeline.mapping import transforms

    rng = random.Random(5)
    words = ["Müller", "José", "Łódź", "Kríž", "日本語", "O’Brien", "Ærø", "Straße", "Renée", "Šárka", "Dvořák"]
    names = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(300)]
    names += ["KRÍŽ", "VÍŠEK", "JOÃO", "SÃO PAULO", "Ærøskøbing", "Weiß-Müller"]
    garbled = [n.encode().decode("latin-1") for n in names] + [n.encode().decode("cp1252", errors="replace")
                                                              for n in names if "Ł" not in n]
    garbled += [g.encode().decode("cp1252", errors="replace") for g in garbled[:100] if "\ufffd" not in g]
    garbled = [g for g in garbled if "\ufffd" not in g]
    column = pd.Series([*names, *garbled], dtype=STRING)
    found = ~rules.not_double_encoded(column)
    assert not found[:len(names)].any(), [n for n, f in zip(names, found, strict=False) if f]
    assert found[len(names):].all(), [g for g, f in zip(garbled, found[len(names):], strict=True) if not f]
    fixed = transforms.fix_mojibake(column).tolist()
    assert fixed[:len(names)] == names
    assert all(f in names for f in fixed[len(names):])


def test_length_between_counts_characters_in_ascii_and_unicode_columns() -> None:
    """An ASCII column's lengths come from its offsets, any other's from its characters: the same answer."""
    for values in (["", "ab", "abc", "abcdef", None, "abcd"], ["", "日本", "日本語", "日本語テキスト", None, "abcd"]):
        column = pd.Series(["padding", *values], dtype=pd.StringDtype("pyarrow")).iloc[1:].reset_index(drop=True)
        assert rules.length_between(column, 3, 4).tolist() == [True, False, True, False, False, True]
        assert rules.length_between(column, None, 2).tolist() == [True, True, False, False, True, False]


def test_valid_username_runs_the_pattern_only_where_it_can_decide_otherwise() -> None:
    """The pattern runs only on values holding a byte outside printable ASCII; the answer is the
    pattern's on every value (random columns of ASCII, spaces, controls, accents, CJK, emoji)."""
    from pipeline.arrowtext import fullmatch

    rng = random.Random(3)
    alphabet = [*"abcXYZ019._-@+", " ", "\t", "\x01", "\x7f", "é", "日", "\u3000", "\u200b", "😀", "\u0301"]
    for _ in range(200):
        values = [None if r < 0.05 else "" if r < 0.1 else
                  "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
                  for r in (rng.random() for _ in range(rng.randint(1, 40)))]
        column = pd.Series(["pad", *values], dtype=pd.StringDtype("pyarrow")).iloc[1:].reset_index(drop=True)
        expected = rules.empty(column) | fullmatch(column, rules.USERNAME_CHARS)
        assert rules.valid_username(column).tolist() == expected.tolist(), values
