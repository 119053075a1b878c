"""Vectorised transforms: passing and failing inputs, NA handling, and agreement with libphonenumber."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.mapping import transforms as tf
from pipeline.mapping.phones import to_e164_per_row

NA = pd.NA


def S(values: list[object]) -> pd.Series:
    return pd.Series(values, dtype="string[pyarrow]")


def out(series: pd.Series) -> list[object]:
    assert series.dtype == "string[pyarrow]"
    return [NA if v is NA else v for v in series.tolist()]


# ---------------------------------------------------------------------------------------------- phone

@pytest.mark.parametrize(("region", "raw", "e164"), [
    ("JP", "090-1234-5678", "+819012345678"),
    ("JP", "03-1234-5678", "+81312345678"),
    ("JP", "0120-123-456", "+81120123456"),
    ("JP", " 090 1234 5678 ", "+819012345678"),
    ("JP", "０９０－１２３４－５６７８", "+819012345678"),          # full-width digits (NFKC)
    ("JP", "＋８１ ９０ １２３４ ５６７８", "+819012345678"),
    ("JP", "+81 90-1234-5678", "+819012345678"),
    ("JP", "+81 (0)90-1234-5678", "+819012345678"),               # bracketed trunk prefix
    ("JP", "+81 090-1234-5678", "+819012345678"),                 # trunk 0 repeated after +81
    ("JP", "010-81-90-1234-5678", "+819012345678"),               # Japan's international prefix
    ("JP", "0081 90 1234 5678", "+819012345678"),
    ("US", "(415) 555-0100", "+14155550100"),
    ("US", "415.555.0100", "+14155550100"),
    ("US", "1-415-555-0100", "+14155550100"),
    ("US", "+1 415 555 0100", "+14155550100"),
    ("US", "011 81 90 1234 5678", "+819012345678"),               # NANP international prefix
    ("CA", "(604) 555-0199", "+16045550199"),
    ("DE", "030 1234567", "+49301234567"),
    ("DE", "0171 1234567", "+491711234567"),
    ("DE", "030/1234567", "+49301234567"),
    ("DE", "+49 (0)30 1234567", "+49301234567"),
    ("DE", "0049 30 1234567", "+49301234567"),
    ("GB", "020 7946 0018", "+442079460018"),
    ("FR", "06 12 34 56 78", "+33612345678"),
    ("DE", "+819012345678", "+819012345678"),                     # E.164 passes through
    ("US", "+44 20 7946 0018", "+442079460018"),
    ("JP", "+39 06 6982 1234", "+390669821234"),                  # no rule for +39: libphonenumber
    ("IT", "06 6982 1234", "+390669821234"),                      # no rule for IT: libphonenumber
])
def test_phone_normalises(region: str, raw: str, e164: str) -> None:
    assert out(tf.phone(S([raw]), region)) == [e164]


@pytest.mark.parametrize(("region", "raw"), [
    ("JP", "n/a"),
    ("JP", "12"),
    ("JP", "090-CALL-NOWW"),         # letters are never read as keypad digits
    ("US", "1-800-FLOWERS"),
    ("US", "415-555-0100 ext 12"),
    ("JP", "090-1234-5678#"),
    ("US", "555-0100"),              # a local number without area code
    ("US", "(415) 555-01000"),       # too long for NANP
    ("JP", "+81 90 1234"),           # known country code, too short
    ("DE", "1234567"),               # no trunk prefix, no area code
    ("JP", "+"),
    ("JP", "--"),
])
def test_phone_leaves_what_it_cannot_normalise(region: str, raw: str) -> None:
    assert out(tf.phone(S([raw]), region)) == [raw.strip()]


def test_phone_keeps_na_and_blanks_as_no_value_and_trims_the_rest() -> None:
    assert out(tf.phone(S([None, "", "   ", "  n/a  "]), "JP")) == [NA, NA, NA, "n/a"]


def test_phone_keeps_the_index_even_when_labels_repeat() -> None:
    values = pd.Series(["090-1234-5678", "n/a", "03-1234-5678"], index=[7, 7, 3], dtype="string[pyarrow]")
    result = tf.phone(values, "JP")
    assert list(result.index) == [7, 7, 3]
    assert out(result) == ["+819012345678", "n/a", "+81312345678"]


def test_phone_agrees_with_libphonenumber_on_valid_numbers() -> None:
    cases = {"JP": ["090-1234-5678", "03-1234-5678", "06-6123-4567", "+81 80 1111 2222"],
             "US": ["(415) 555-0100", "212-555-0123", "+1 650 253 0000"],
             "DE": ["030 1234567", "089 12345678", "0171 1234567"],
             "GB": ["020 7946 0018", "0161 496 0000"],
             "FR": ["01 23 45 67 89", "06 12 34 56 78"]}
    for region, values in cases.items():
        assert out(tf.phone(S(values), region)) == out(to_e164_per_row(S(values), region)), region


def test_phone_usual_shapes_answer_as_the_rules_do(monkeypatch) -> None:
    """The byte-level path for the usual spellings gives, value by value, what the Arrow rules and
    libphonenumber give alone: national numbers with hyphens anywhere, trunk and international prefixes,
    every length, E.164 with and without a repeated trunk 0, other country codes, and whatever else.
    Every shape is looked at here (``_USUAL_SHARE`` 0); then, with the share as shipped, a column whose
    usual spellings dominate goes through both paths and one without them through the rules alone."""
    import random

    from pipeline.arrowtext import string_array, trim_whitespace
    from pipeline.mapping import phones

    rng = random.Random(5)
    codes = [r.country_code for r in phones.RULES.values()] + ["39"]

    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    def national() -> str:
        number = rng.choice(["0", "00", "010", "", "1", "01", "05", "09"]) + digits(rng.randint(1, 12))
        return "".join(d + ("-" if rng.random() < 0.25 else "") for d in number)

    def e164(code: str) -> str:
        return "+" + code + rng.choice(["", "0"]) + digits(rng.randint(0, 12))

    def anything() -> str | None:
        return rng.choice([national, lambda: e164(rng.choice(codes)), lambda: " " + national() + " ",
                           lambda: rng.choice(["", None, "n/a", "+", "--", "0-", "090-1234-5678#",
                                               "０９０-１２３４-５６７８", "+81 90 1234 5678"])])()

    for region in [*phones.RULES, "IT"]:
        code = phones.RULES[region].country_code if region in phones.RULES else "39"

        def usual(code: str = code) -> str:
            return rng.choice([f"0{rng.randint(1, 9)}{digits(1)}-{digits(4)}-{digits(4)}",
                               f"0{rng.randint(1, 9)}-{digits(4)}-{digits(4)}",
                               f"+{code}{rng.randint(1, 9)}{digits(9)}"])

        raw = trim_whitespace(string_array(S([anything() for _ in range(1500)])))
        with monkeypatch.context() as every_shape:
            every_shape.setattr(phones, "_USUAL_SHARE", 0)
            rows, numbers = phones._usual_shapes(raw, region)
        expected = phones._by_rules(raw, region)
        assert numbers.to_pylist() == expected.take(rows).to_pylist(), region
        assert len(rows) > (20 if region in ("JP", "DE", "GB", "FR") else -1), region   # the path is taken
        for values in ([usual() if rng.random() < 0.7 else anything() for _ in range(1500)],
                       [anything() for _ in range(1500)]):
            s = S(values)
            expected = phones._by_rules(trim_whitespace(string_array(s)), region).to_pylist()
            assert out(tf.phone(s, region)) == [NA if v is None else v for v in expected], region


# -------------------------------------------------------------------------------------------- boolean

def test_boolean_reads_every_legacy_encoding() -> None:
    raw = ["t", "f", "1", "0", "yes", "no", "Y", "N", "TRUE", "False", " y ", "On", "off", "T", "F"]
    assert out(tf.boolean(S(raw))) == ["true", "false", "true", "false", "true", "false", "true", "false",
                                       "true", "false", "true", "true", "false", "true", "false"]


@pytest.mark.parametrize(("default", "expected"), [(None, NA), (False, "false"), (True, "true")])
def test_boolean_null_and_blank_take_the_default(default: bool | None, expected: object) -> None:
    assert out(tf.boolean(S([None, "", "  "]), default=default)) == [expected] * 3


def test_boolean_leaves_unknown_encodings_for_validation() -> None:
    assert out(tf.boolean(S(["maybe", " 2 ", "NULL", "yes please"]), default=False)) == \
        ["maybe", "2", "NULL", "yes please"]


# ----------------------------------------------------------------------------------------------- date

def test_date_writes_mm_dd_yyyy() -> None:
    raw = ["1985-02-01", "1985-2-1", "2000-02-29", " 1999-12-31 ", "1985-02-01 00:00:00+09",
           "1985-02-01T10:00:00", "0001-01-01"]
    assert out(tf.date(S(raw))) == ["02/01/1985", "02/01/1985", "02/29/2000", "12/31/1999", "02/01/1985",
                                    "02/01/1985", "01/01/0001"]


def test_date_leaves_impossible_and_ambiguous_values() -> None:
    raw = ["1900-02-29", "1985-13-01", "1985-02-30", "1985-00-10", "01/02/1985", "soon", "19850201"]
    assert out(tf.date(S(raw))) == raw
    assert out(tf.date(S([None, ""]))) == [NA, ""]


def test_a_date_before_the_common_era_is_left_for_validation() -> None:
    """PostgreSQL writes a date, timestamp or timestamptz before year 1 with " BC" after it; its date was
    written as that year of our era (0044-03-15 BC became 03/15/0044) and imported as a valid birthdate."""
    raw = ["0044-03-15 BC", "0044-03-15 10:00:00 BC", "0001-12-31 23:00:00+00 BC", "0044-03-15"]
    assert out(tf.date(S(raw))) == [*raw[:3], "03/15/0044"]
    assert out(tf.date(S(raw), zone="Asia/Tokyo")) == [*raw[:3], "03/15/0044"]
    assert out(tf.epoch(S(raw[:3]))) == raw[:3]


def test_mysqls_zero_date_is_no_value() -> None:
    """MySQL writes 0000-00-00 for "no date"; kept, it rejected the user as an impossible birthdate."""
    raw = ["0000-00-00", " 0000-00-00 00:00:00", "0000-00-00T00:00:00.000000", "1985-02-01", None]
    assert out(tf.date(S(raw))) == [NA, NA, NA, "02/01/1985", NA]
    assert out(tf.epoch(S(raw))) == [NA, NA, NA, "476064000", NA]
    partly = ["1985-00-00", "0000-01-01", "0000-00-00 10:00:00", "x0000-00-00"]   # still for validation
    assert out(tf.date(S(partly))) == ["1985-00-00", "0000-01-01", "0000-00-00 10:00:00", "x0000-00-00"]
    assert out(tf.epoch(S(partly[2:]))) == partly[2:]


def test_postgresqls_infinity_is_no_value() -> None:
    """PostgreSQL's COPY writes ``infinity``/``-infinity`` for a date or timestamp an application set to
    "never"/"unknown"; kept, it rejected the user as a non-integer updated_at or an impossible birthdate."""
    raw = ["infinity", " -infinity", "2021-03-04 05:06:07", None]
    assert out(tf.epoch(S(raw))) == [NA, NA, "1614834367", NA]
    assert out(tf.date(S(raw))) == [NA, NA, "03/04/2021", NA]
    other = ["Infinity", "+infinity", "infinity and beyond", "1985-02-01infinity"]   # still for validation
    assert out(tf.date(S(other))) == other
    assert out(tf.epoch(S(other[2:]))) == other[2:]


# ---------------------------------------------------------------------------------------------- epoch

def test_epoch_converts_timestamps_to_seconds() -> None:
    raw = ["2021-03-04 05:06:07", "2021-03-04 05:06:07+00", "2021-03-04 14:06:07+09:00",
           "2021-03-04T05:06:07Z", "1970-01-01", "1614834367", "March 4 2021 05:06:07"]
    assert out(tf.epoch(S(raw))) == ["1614834367"] * 4 + ["0", "1614834367", "1614834367"]


def test_epoch_of_years_outside_pandas_nanosecond_range() -> None:
    """Before, a timestamp of year 1 or 9999 in a parser-only spelling overflowed a nanosecond Timedelta
    and the whole partition's mapping raised."""
    raw = ["0001-01-01 00:00:00", "0001-01-01T00:00:00Z", "9999-12-31 23:59:59", "9999-12-31T23:59:59.5+00:00",
           "1600-06-15 12:00:00.25"]
    assert out(tf.epoch(S(raw))) == ["-62135596800", "-62135596800", "253402300799", "253402300799",
                                     "-11661710400"]


def test_epoch_takes_all_digit_values_in_the_unit_given() -> None:
    """Milliseconds (Java's currentTimeMillis, JavaScript's Date.now()) or microseconds, floored to
    seconds. In seconds (the default) a 13-digit value stays as it is, for validation to reject as after
    the year 3000, and a 14-digit compact timestamp is still parsed."""
    millis = ["1614834367000", "1614834367999", "0", "2021-03-04 05:06:07", None, ""]
    assert out(tf.epoch(S(millis), unit="ms")) == ["1614834367", "1614834367", "0", "1614834367", NA, ""]
    assert out(tf.epoch(S(["1614834367123456", "1614834367999999"]), unit="us")) == ["1614834367"] * 2
    assert out(tf.epoch(S(["1614834367000", "20210304050607", "1614834367"]))) == \
        ["1614834367000", "1614834367", "1614834367"]


def test_epoch_floors_a_fraction_of_its_unit() -> None:
    """An epoch kept in a DECIMAL, a DOUBLE or a REAL (PHP's microtime(true), Python's time.time()): its
    whole units, in any unit and zone (it is an instant). Text that only ends in digits is still parsed."""
    raw = ["1614834367.25", "1614834367.999999", "1614834367.", "1614834367", "2021-03-04 05:06:07.5", None, ""]
    assert out(tf.epoch(S(raw))) == ["1614834367"] * 5 + [NA, ""]
    assert out(tf.epoch(S(raw), zone="Asia/Tokyo")) == ["1614834367"] * 4 + ["1614801967", NA, ""]
    assert out(tf.epoch(S(["1614834367999.9", "1614834367000.0"]), unit="ms")) == ["1614834367"] * 2


def test_epoch_takes_a_negative_value_as_units_before_1970() -> None:
    """An epoch before 1970 (a birth time a JavaScript application kept from Date.now()) is negative. In
    milliseconds it stayed as written, so 1960 was imported as seconds (the year -8000); -1 to -9999 were
    read as a year (-2024: the year -2024), and -1.5 was cut to -1, not floored."""
    raw = ["-315619200000", "-1500.5", "-1", "-86400000", "315619200000"]
    assert out(tf.epoch(S(raw), unit="ms")) == ["-315619200", "-2", "-1", "-86400", "315619200"]
    assert out(tf.epoch(S(["-2024", "-1.5", "-0.25", "-1.0", "-86400"]))) == ["-2024", "-2", "-1", "-1", "-86400"]
    assert out(tf.epoch(S(["-1.5", "-315619200000"]), unit="ms", zone="Europe/Berlin")) == ["-1", "-315619200"]


def test_epoch_reads_naive_timestamps_in_the_zone_given() -> None:
    """A legacy application that wrote local wall-clock times (a DATETIME, a PostgreSQL timestamp without
    time zone, SQLite text): in Berlin, summer and winter apart. A time the spring change skips is taken
    after the gap, one the autumn change repeats as its summer-time instant. Values with an offset,
    epoch digits and dates keep their meaning (a date is local midnight)."""
    raw = ["2024-07-01 12:00:00", "2024-01-15 12:00:00", "2024-03-31 02:30:00", "2024-10-27 02:30:00",
           "March 4 2021 05:06:07", "2024-07-01 12:00:00+00", "2024-07-01 12:00:00 +0200",
           "March 4 2021 05:06:07 GMT", "2024-07-01T12:00:00Z", "1719835200", "2024-07-01", None, "", "garbage",
           "-1714525200"]
    assert out(tf.epoch(S(raw), zone="Europe/Berlin")) == [
        "1719828000", "1705316400", "1711846800", "1729989000", "1614830767", "1719835200", "1719828000",
        "1614834367", "1719835200", "1719835200", "1719784800", NA, "", "garbage", "-1714525200"]
    assert out(tf.epoch(S(["2024-07-01 12:00:00"]), zone="Asia/Tokyo")) == ["1719802800"]
    assert out(tf.epoch(S(["1719835200000"]), unit="ms", zone="Asia/Tokyo")) == ["1719835200"]


def test_date_of_a_timestamp_with_an_offset_is_taken_in_the_zone_given() -> None:
    """A birthdate kept as local midnight in Tokyo reads as the day before in UTC, as PostgreSQL writes a
    timestamptz; with the zone it is the day it was. Dates and naive timestamps keep the date written."""
    raw = ["1990-01-30 15:00:00+00", "1990-01-30T15:00:00Z", "1990-01-30 23:30:00-05:00", "1990-01-31 00:00:00+09",
           "1990-01-31", "1990-01-31 00:00:00", "0000-00-00", "garbage+00", None, ""]
    assert out(tf.date(S(raw), zone="Asia/Tokyo")) == ["01/31/1990"] * 6 + [NA, "garbage+00", NA, ""]
    assert out(tf.date(S(raw[:3]))) == ["01/30/1990"] * 3                # without a zone: the date as written


def test_epoch_leaves_a_value_that_names_no_year() -> None:
    """The parser fills in what a value leaves out: "now" and "today" were the run's own time, a time
    alone (a TIME column's "10:00:00") that time on the day of the run, and "24-05-01" or "May 10" a year
    it guessed; each was imported as an updated_at nobody wrote. They are left for validation now."""
    raw = ["now", "today", "10:00:00", "10:00", "10:00:00.1234", "23:59:59Z", "10:00+09:00", "24-05-01",
           "May 10", "1 May"]
    assert out(tf.epoch(S(raw))) == raw
    assert out(tf.epoch(S(raw), zone="Europe/Berlin")) == raw
    named = ["May 2024", "Wed, 01 May 2024 10:00:00 GMT", "2024/05/01 10:00", "01-May-2024", "20240501100000",
             "20240501T100000Z", "20240501T100000"]                       # the last two: ISO 8601's basic format
    assert out(tf.epoch(S(named))) == ["1714521600", "1714557600", "1714557600", "1714521600", *["1714557600"] * 3]


def test_epoch_leaves_a_date_that_could_be_day_or_month_first() -> None:
    """The parser read 01/05/2024 month first and 25/12/2024 day first: in a column written day first
    every day up to the 12th became a month (1 May imported as January 5). Either order is left for
    validation where it matters; where only one reading is a date, or both agree, the value is read."""
    raw = ["01/05/2024", "01-05-2024 10:00", "1/5/2024", "12/11/2024 23:59:59"]
    assert out(tf.epoch(S(raw))) == raw
    assert out(tf.epoch(S(raw), zone="Europe/Berlin")) == raw
    assert out(tf.epoch(S(["25/12/2024", "12/25/2024", "05/05/2024", "2024/01/05"]))) == \
        ["1735084800", "1735084800", "1714867200", "1704412800"]


def test_epoch_leaves_what_it_cannot_parse() -> None:
    assert out(tf.epoch(S(["garbage", None, "", " 2021-13-45 "]))) == ["garbage", NA, "", "2021-13-45"]


def _layouts(values: list[str | None]) -> list[pd.Series]:
    """The same values as one chunk, and as two chunks the first of which is a slice (offsets past 0)."""
    import pyarrow as pa

    whole = pa.array(["padding", *values], pa.string())
    half = len(values) // 2
    chunked = pa.chunked_array([whole.slice(1, half), pa.array(values[half:], pa.string())])
    return [S(values), pd.Series(pd.arrays.ArrowStringArray(chunked))]


def _dates_and_times(seed: int, n: int) -> list[str | None]:
    """Fixed-width values the fast paths take (valid or not, in range or not) and the spellings they
    leave to the parser, shuffled."""
    import numpy as np

    rng = np.random.default_rng(seed)
    year = rng.choice([1, 4, 100, 1582, 1677, 1678, 1900, 1970, 2000, 2024, 2261, 2262, 9999], n)
    month, day = rng.integers(0, 14, n), rng.integers(0, 33, n)
    hour, minute, second = rng.integers(0, 26, n), rng.integers(0, 62, n), rng.integers(0, 62, n)
    values: list[str | None] = []
    for i in range(n):
        d = f"{year[i]:04d}-{month[i]:02d}-{day[i]:02d}"
        values += [d, f"{d} {hour[i]:02d}:{minute[i]:02d}:{second[i]:02d}",
                   f"{d}T{hour[i] % 24:02d}:{minute[i] % 60:02d}:{second[i] % 60:02d}"]
    values += ["1985-2-1", "1985-02-01 10:00", "1985-02-01t10:00:00", "1985-02-01 10:00:00.5",
               "1985-02-01 10:00:00+09", "1985/02/01", "１９８５-０２-０１", " 1985-02-01 ", "1614834367",
               "1985-02-01x10:00:00", "198a-02-01", "", None, "abcdefghij", "abcdefghijklmnopqrs"]
    rng.shuffle(values)      # type: ignore[arg-type]
    return values


def test_the_fixed_width_date_path_agrees_with_the_pattern_on_every_value() -> None:
    from pipeline.arrowtext import string_array

    values = _dates_and_times(1, 400)
    expected = out(pd.Series(pd.arrays.ArrowStringArray(tf._date_by_pattern(string_array(tf.trim(S(values)))))))
    changed = sum(isinstance(w, str) and v != w for v, w in zip(values, expected, strict=True))
    assert sum(w is NA for w in expected) == 1 and changed > 300
    for s in _layouts(values):
        assert out(tf.date(s)) == expected


def test_the_fixed_width_epoch_path_agrees_with_the_parser_on_every_value() -> None:
    values = _dates_and_times(2, 400)
    expected = out(pd.Series(pd.arrays.ArrowStringArray(tf._epoch_by_parser(tf.trim(S(values))))))
    assert sum(isinstance(w, str) and v != w for v, w in zip(values, expected, strict=True)) > 300
    for s in _layouts(values):
        assert out(tf.epoch(s)) == expected


# ------------------------------------------------------------------------------ text, template, const

def test_text_transforms() -> None:
    s = S(["  Taro@Example.COM ", None, "ＡＢＣ１２３", "a \t  b"])
    assert out(tf.trim(s)) == ["Taro@Example.COM", NA, "ＡＢＣ１２３", "a \t  b"]
    assert out(tf.lower(tf.trim(s)))[0] == "taro@example.com"
    assert out(tf.upper(S(["abc"]))) == ["ABC"]
    assert out(tf.nfkc(s))[2] == "ABC123"
    assert out(tf.collapse_spaces(s)) == ["Taro@Example.COM", NA, "ＡＢＣ１２３", "a b"]
    assert out(tf.collapse_spaces(S(["a \n b"]))) == ["a \n b"]   # line breaks are the policy's business


def test_lower_is_unicode_lower_case_whether_the_column_is_ascii_or_not() -> None:
    """An ASCII column is lowered byte by byte, any other by Unicode's rules: the same answers."""
    ascii_only = ["Taro@Example.COM", None, "", "A-Z_0@X.ORG"]
    unicode = ["ÉMILE@EXAMPLE.COM", "STRASSE", "ΣΟΦΙΑ", None, "ＡＢＣ", "Taro@Example.COM"]
    for values in (ascii_only, unicode):
        want = [v.lower() if isinstance(v, str) else NA for v in values]
        for s in _layouts(values):
            assert out(tf.lower(s)) == want


def test_fix_mojibake_reads_double_encoded_text_as_it_was() -> None:
    """UTF-8 read as Windows-1252 or Latin-1 once (or twice, or in part of the value) is put back;
    everything else, real Latin-1 letters, a Slovak KRÍŽ (valid UTF-8 as bytes), a lone Ã and NA
    included, is left as it is, at its index."""
    texts = ["Müller", "José", "it’s", "日本語", "Łódź", "Straße"]
    once = [t.encode().decode("cp1252", errors="ignore") if t != "Łódź" else t.encode().decode("latin-1")
            for t in texts]
    twice = once[0].encode().decode("cp1252")
    s = pd.Series([*once, twice, "JÃ¼rgen Müller", "Müller", "JOÃO", "KRÍŽ", None, "", "plain", "Ærø"],
                  dtype="string[pyarrow]", index=range(10, 25))
    fixed = tf.fix_mojibake(s)
    assert fixed.index.tolist() == list(range(10, 25))
    assert out(fixed) == [*texts, "Müller", "Jürgen Müller", "Müller", "JOÃO", "KRÍŽ", NA, "", "plain", "Ærø"]
    assert out(tf.run_steps(S([" MÃ¼ller "]), [("fix_mojibake", {}), ("trim", {}), ("upper", {})])) == ["MÜLLER"]
    # a double-encoded à holds a no-break space: repaired before collapse_spaces, not after (README)
    nbsp = S(["FÃ\u00a0bregas"])
    assert out(tf.run_steps(nbsp, [("fix_mojibake", {}), ("collapse_spaces", {})])) == ["Fàbregas"]
    assert out(tf.run_steps(nbsp, [("collapse_spaces", {}), ("fix_mojibake", {})])) == ["FÃ bregas"]
    untouched = S(["Müller", "José"])
    assert tf.fix_mojibake(untouched) is untouched            # no candidate: the column itself, no copy


def test_template_joins_trims_collapses_and_skips_na_parts() -> None:
    first = S(["Taro", None, None, " Anna  Maria ", "Ünal"])
    last = S(["Yamada", "Smith", None, "Müller, Jr.", None])
    result = tf.render_template("{first_name} {last_name}", {"first_name": first, "last_name": last},
                                first.index)
    assert out(result) == ["Taro Yamada", "Smith", NA, "Anna Maria Müller, Jr.", "Ünal"]


def test_template_with_literals_and_braces() -> None:
    ids = S(["7", None])
    result = tf.render_template("{{u}}-{id}", {"id": ids}, ids.index)
    assert out(result) == ["{u}-7", NA]


def test_constant() -> None:
    assert out(tf.constant("acme-jp", pd.RangeIndex(2))) == ["acme-jp", "acme-jp"]


def test_run_steps_applies_in_order() -> None:
    result = tf.run_steps(S([" A@B.C "]), [("trim", {}), ("lower", {})])
    assert out(result) == ["a@b.c"]


def test_collapse_spaces_finds_unicode_spaces_in_non_ascii_columns() -> None:
    """The byte scan that lets most non-ASCII columns skip the regex must still find every space."""
    for space in ["\u3000", "\u00a0", "\u2007", "\u202f"]:
        assert out(tf.collapse_spaces(S([f"山田{space}太郎", "Müller"]))) == ["山田 太郎", "Müller"]
    assert out(tf.collapse_spaces(S(["山田太郎", " Ünal "]))) == ["山田太郎", "Ünal"]


def test_the_byte_scan_knows_every_non_ascii_character_of_the_spaces_class() -> None:
    import re

    in_class = {chr(c) for c in range(0x80, 0x110000) if re.fullmatch(tf.SPACES, chr(c))}
    assert in_class == {b.decode() for b in tf.UNICODE_SPACE_BYTES}


def test_template_of_literals_only_is_the_same_text_on_every_row() -> None:
    result = tf.render_template("{{x}}  y ", {}, pd.RangeIndex(2))
    assert out(result) == ["{x} y", "{x} y"]


def test_byte_scans_find_needles_anywhere_in_the_buffer() -> None:
    from pipeline.arrowtext import has_bytes, has_non_ascii, has_substring

    s = S(["ab", None, "c  d", "e\tf", "末尾\u3000"])
    assert has_substring(s, b"  ") and not has_substring(s, b"   ")
    assert has_substring(s, b"zz", "\u3000".encode()) and not has_substring(s, b"zz", b"yy")
    assert has_bytes(s, b"\t") and not has_bytes(s, b"\r\n")
    assert has_non_ascii(s) and not has_non_ascii(S(["plain", None]))
    assert not has_substring(S(["a"]), b"abc")                  # needle longer than the buffer
    assert has_substring(S(["xa", "bc"]), b"ab")                # across two values: "only worth a look"



@pytest.mark.parametrize("libc", [True, False], ids=["memchr", "copy"])
def test_has_bytes_reads_every_chunk_and_the_last_byte(libc: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of scanning (libc's ``memchr`` on the buffer where it lies, and the copy searched
    without a C library) see a byte in a later chunk and in the buffer's last byte, and nothing else."""
    import pyarrow as pa

    from pipeline import arrowtext

    if not libc:
        monkeypatch.setattr(arrowtext, "_memchr", None)
    elif arrowtext._memchr is None:
        pytest.skip("no C library memchr here")
    chunked = pa.chunked_array([["plain", None], [], ["x", "end\\"]])
    assert arrowtext.has_bytes(chunked, b"\\") and arrowtext.has_bytes(chunked, b"zd")
    assert not arrowtext.has_bytes(chunked, b",\r\n") and not arrowtext.has_bytes(pa.array([None, ""]), b",")
    assert arrowtext.has_bytes(S(["a,b"]), b",") and not arrowtext.has_bytes(S(["a,b"]).iloc[:0], b"\t")

def test_trimming_is_skipped_only_where_no_value_could_change() -> None:
    """``may_be_padded`` reads the first and last byte of each value; every character Arrow's
    trimming removes must make it answer True, wherever it sits in a (sliced, nullable) array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.arrowtext import has_empty, may_be_padded, trim_whitespace

    missed = []
    for cp in [*range(0, 0x3100), 0x180E, 0xFEFF]:
        if 0xD800 <= cp <= 0xDFFF:
            continue
        for value in (chr(cp) + "x", "x" + chr(cp), chr(cp)):
            arr = pa.array(["pad", value, None, "end"]).slice(1, 2)
            if pc.utf8_trim_whitespace(arr).to_pylist() != arr.to_pylist() and not may_be_padded(arr):
                missed.append(hex(cp))
    assert missed == []
    clean = pa.array(["a@b.example", "+819012345678", None, "", "true"])
    assert not may_be_padded(clean) and trim_whitespace(clean) is clean
    # empty and null values read a neighbour's byte (the last one, at offset 0): never a miss
    assert not may_be_padded(pa.array(["", "ab", None, ""])) and not may_be_padded(pa.array(["", None]))
    assert may_be_padded(pa.array(["", "ab "])) and may_be_padded(pa.array([" ab", ""]))
    assert trim_whitespace(pa.array([" a ", "山田\u3000"])).to_pylist() == ["a", "山田"]
    assert trim_whitespace(pa.chunked_array([["a"], ["b "]])).to_pylist() == ["a", "b"]
    assert (has_empty(pa.array(["a", None])), has_empty(pa.array(["a", ""])),
            has_empty(pa.array(["", "a"]).slice(1)), has_empty(pa.array(["a", None, ""]).slice(0, 2))) == (
        False, True, False, False)


def test_empty_and_null_swap_without_copying_the_values() -> None:
    """``empty_as_null`` and ``null_as_empty`` answer as Arrow's ``if_else``/``fill_null`` on every
    layout (sliced at odd offsets, 32- and 64-bit offsets, nulls anywhere), sharing the data buffer;
    a null slot that holds bytes (Arrow allows it) takes ``fill_null``'s copy."""
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.arrowtext import empty_as_null, null_as_empty

    rng = random.Random(11)
    for _ in range(300):
        values = [rng.choice(["", None, "a", "山田", "x y"]) for _ in range(rng.randint(0, 40))]
        for kind in (pa.string(), pa.large_string()):
            whole = pa.array(["pad", *values, "tail"], kind)
            arr = whole.slice(1, len(values)) if rng.random() < 0.7 else pa.array(values, kind)
            made = empty_as_null(arr)
            assert made.to_pylist() == pc.if_else(pc.equal(arr, ""), pa.scalar(None, kind), arr).to_pylist()
            assert made.type == kind and (not len(arr) or made.buffers()[2].address == arr.buffers()[2].address)
            back = null_as_empty(made)
            assert back.to_pylist() == pc.fill_null(made, "").to_pylist() and back.null_count == 0
            assert null_as_empty(arr).to_pylist() == pc.fill_null(arr, "").to_pylist()
    # a null over bytes: the bitmap cannot just be dropped
    held = pa.Array.from_buffers(pa.string(), 2, [pa.py_buffer(bytes([0b10])), pa.array(["ab", "c"]).buffers()[1],
                                                  pa.array(["ab", "c"]).buffers()[2]])
    assert held.to_pylist() == [None, "c"] and null_as_empty(held).to_pylist() == ["", "c"]


def test_filter_rows_equals_boolean_indexing() -> None:
    import numpy as np
    import pyarrow as pa

    from pipeline.arrowtext import filter_rows

    chunked = pa.chunked_array([pa.array(["pad", "a", None], pa.string()).slice(1), pa.array(["", "d", "e"])])
    frame = pd.DataFrame({"text": pd.Series(pd.arrays.ArrowStringArray(chunked)), "number": [1, 2, 3, 4, 5],
                          "flag": pd.array([True, None, False, True, None], dtype="boolean")},
                         index=[10, 11, 12, 13, 14])
    keep = np.array([True, False, True, True, False])
    got, expected = filter_rows(frame, keep), frame[keep]
    pd.testing.assert_frame_equal(got, expected)
    assert got["text"].dtype == frame["text"].dtype and list(got.index) == [10, 12, 13]


def test_repeated_text_is_the_value_in_every_row() -> None:
    import pyarrow as pa

    from pipeline.arrowtext import repeated_text

    for value in ("acme-jp", "", "東京 ,x"):
        for rows in (0, 1, 3, 1000):
            arr = repeated_text(value, rows)
            arr.validate(full=True)
            assert arr.equals(pa.array([value] * rows, pa.large_string()))
    assert tf.constant("東京", pd.RangeIndex(5, 8)).equals(pd.Series(["東京"] * 3, index=range(5, 8), dtype=tf.STRING))


def test_rows_with_bytes_names_exactly_the_values_that_hold_one() -> None:
    import numpy as np
    import pyarrow as pa

    from pipeline.arrowtext import rows_with_bytes

    values = ["a\nb", None, "", "plain", "\r", "x\r\n", "日本\n", "tail\n"]
    whole = pa.array(["\n\n", *values, "\r"], pa.string())
    for arr in (pa.array(values, pa.string()), whole.slice(1, len(values))):   # a slice between line breaks
        assert rows_with_bytes(arr, b"\r\n").tolist() == [v is not None and ("\n" in v or "\r" in v) for v in values]
        assert not rows_with_bytes(arr, b"#").any()
    assert rows_with_bytes(pa.array([], pa.string()), b"\n").tolist() == []
    assert np.flatnonzero(rows_with_bytes(whole, b"\n")).tolist() == [0, 1, 6, 7, 8]


def _reference_hash(value: bytes) -> int:
    """``string_hashes``' definition, in Python integers."""
    m = (1 << 64) - 1

    def mix(h: int) -> int:
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) & m
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) & m
        return h ^ (h >> 31)

    h = mix((len(value) * 0x9E3779B97F4A7C15) & m)
    for at in range(0, len(value), 8):
        word = int.from_bytes(value[at:at + 8], "little")
        h = mix(((h ^ word) * 0x9E3779B97F4A7C15) & m)
    return h


def test_string_hashes_follow_their_definition_in_every_layout() -> None:
    import numpy as np
    import pyarrow as pa

    from pipeline.arrowtext import key_hashes, string_hashes

    rng = np.random.default_rng(5)
    values = ["", "a", "abcdefgh", "abcdefghi", "abc\x00", "abc", "ユーザー@例え.jp", "x" * 300]
    values += ["".join(chr(c) for c in rng.integers(32, 0x3000, rng.integers(0, 40))) for _ in range(500)]
    expected = [_reference_hash(v.encode()) for v in values]
    whole = pa.array(["before", *values, "after"], pa.string())
    layouts = [pa.array(values, pa.string()), whole.slice(1, len(values)),
               pa.chunked_array([whole.slice(1, 200), pa.array(values[200:], pa.string())]),
               pd.Series(values, dtype=object), pd.Series(values, dtype="string[pyarrow]")]
    for layout in layouts:
        assert string_hashes(layout).tolist() == expected
    assert key_hashes(pd.Series(values, dtype=object)).tolist() == expected


def test_string_hashes_tell_apart_values_that_differ_in_any_byte_or_length() -> None:
    import numpy as np

    from pipeline.arrowtext import string_hashes

    rng = np.random.default_rng(9)
    base = [bytes(rng.integers(0, 256, rng.integers(0, 70), dtype=np.uint8)).decode("latin-1") for _ in range(20_000)]
    values = set(base)
    for v in base[:5_000]:                       # neighbours: a byte changed, a byte added or removed
        values.update({v + "\x00", v[:-1], v[:-1] + chr((ord(v[-1]) + 1) % 256) if v else "z"})
    hashes = string_hashes(pd.Series(sorted(values), dtype="string[pyarrow]"))
    assert len(np.unique(hashes)) == len(values)
