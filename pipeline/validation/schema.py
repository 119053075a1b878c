"""The pandera schema compiled from a ``PoolContract``: what a row must meet, kept apart from how it is run.

Every check is named by its ``Reason`` value, so pandera's ``failure_cases`` (``check`` column) map
straight back to reason codes. Column checks report their own column; row checks (rules that read
several columns) sit on the DataFrameSchema and carry the column the reject is filed under in the
check's ``title``. Each check's ``description`` is the human ``detail`` written to the rejects file.

Checks expect a frame made by ``prepare_frame``: every header column present, ``string[pyarrow]``,
no NA, trimmed. (pandera's own NA handling would let a NA through a "required" check.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import all_empty, arrow, empty_strings, null_as_empty, string_frame, trim_whitespace
from pipeline.contract import MFA_ENABLED, USERNAME, VERIFIABLE, AttributeSpec, PoolContract
from pipeline.csvdialect import MAX_ROW_CHARS, MAX_VALUE_BYTES
from pipeline.reasons import Reason
from pipeline.validation import rules
from pipeline.validation.backend import PoolCheck, PoolColumn, PoolSchema

STRING = pd.StringDtype("pyarrow")
META_COLUMNS = ("_legacy_id", "_tenant")
ROW = ""   # the rejects ``column`` of a rule about the whole row


def _check(reason: Reason, fn: Callable[..., np.ndarray], detail: str, column: str | None = None,
           blank_passes: bool = True) -> PoolCheck:
    """A vectorised pandera check whose name is the Reason value.

    The validator takes the failing rows from the check's boolean output, so the check builds no
    failure-case table (``backend.PoolCheck``). The output is a numpy array, one per row in order: a
    Series of it cost ~17 us to build and ~10 us to ask ``all()``, ~125 times a partition, all of it
    holding the GIL (7% of the partition loop's GIL time, py-spy).
    """

    def run(obj: pd.Series | pd.DataFrame) -> np.ndarray:
        if blank_passes and isinstance(obj, pd.Series) and all_empty(obj):
            return np.ones(len(obj), dtype=bool)     # most optional columns: no work
        return np.asarray(fn(obj), dtype=bool)

    return PoolCheck(run, name=reason.value, title=column, description=detail, ignore_na=False,
                     blank_passes=blank_passes)


def prepare_frame(frame: pd.DataFrame, contract: PoolContract) -> pd.DataFrame:
    """Header columns in header order plus the meta columns; clean trimmed strings, "" for no value.

    A header column the mapping did not produce is treated as empty. Cognito trims every value
    (fact 6), so trimming here makes the checks judge what Cognito will store. The meta columns are not
    values: the legacy id stays as the source has it (a CHAR(n) key's padding too), since the ledger,
    the outcomes and the accounting match it with the source's keys.
    """
    n = len(frame)
    data: dict[str, pd.api.extensions.ExtensionArray] = {}
    for col in (*contract.csv_header, *META_COLUMNS):
        s = frame[col] if col in frame.columns else None
        arr = None if s is None else arrow(s if s.dtype == STRING else s.astype(STRING))
        if arr is None or arr.null_count == len(arr):
            arr = empty_strings(n)
        else:
            if arr.null_count:
                arr = null_as_empty(arr) if isinstance(arr, pa.Array) else pc.fill_null(arr, "")
            arr = arr if col in META_COLUMNS else trim_whitespace(arr)
        data[col] = STRING.__from_arrow__(arr)
    return string_frame(data, pd.RangeIndex(n))


def build_schema(contract: PoolContract) -> PoolSchema:
    """Compile the pool's rules (import-rules section A and F) into one pandera schema."""
    columns = {col: PoolColumn(STRING, checks=[*_column_checks(contract, col)], nullable=False,
                              required=True, coerce=False)
               for col in contract.csv_header}
    return PoolSchema(columns, checks=_row_checks(contract), strict=False, coerce=False,
                              name=f"pool {contract.user_pool_id}")


def _column_checks(contract: PoolContract, col: str) -> list[PoolCheck]:
    spec = contract.spec(col)
    checks = [
        _check(Reason.UNCARRIABLE_VALUE, rules.carriable,
               "contains a line break or ends in a backslash, which Cognito's CSV cannot carry"),
        _check(Reason.VALUE_TOO_LONG, rules.within_bytes, f"longer than {MAX_VALUE_BYTES:,} UTF-8 bytes"),
        _check(Reason.UNDECODABLE_TEXT, rules.decodable,
               "holds bytes that are not UTF-8 in the source database (or U+FFFD, the mark of an earlier "
               "failed decoding): the real characters are lost; fix the legacy value, or convert its "
               "encoding in the SQL file"),
    ]
    if not _formatted(col, spec):        # a format rule (username, email, number...) refuses them already
        checks.append(_check(Reason.CONTROL_CHARACTER, rules.no_control_characters,
                             "holds a control character (NUL, ESC, DEL...) that the import file would carry "
                             "unseen; remove it from the legacy value, or in the SQL file"))
    if not _ascii_only(col, spec):
        checks.append(_check(Reason.DOUBLE_ENCODED_TEXT, rules.not_double_encoded,
                             "UTF-8 text that was once read as Latin-1 and stored again (MÃ¼ller for Müller); "
                             "add the fix_mojibake transform to the column's rule in the mapping, or repair "
                             "the legacy value"))
    if col == USERNAME or col in contract.required_columns:
        checks.append(_check(Reason.MISSING_REQUIRED, rules.filled,
                             f"{col} is required by the pool and is empty", blank_passes=False))

    if col == USERNAME:
        checks += _username_checks(contract)
    elif col == MFA_ENABLED:
        checks.append(_check(Reason.INVALID_BOOLEAN, rules.valid_boolean, "must be true, false or empty"))
        if contract.mfa == "ON":
            checks.append(_check(Reason.MFA_CONFLICT, lambda s: rules.in_values(s, ["", "true"]) |
                                 ~rules.valid_boolean(s),
                                 "pool MFA is ON: cognito:mfa_enabled must be true or empty"))
        elif contract.mfa == "OFF":
            checks.append(_check(Reason.MFA_CONFLICT, lambda s: rules.in_values(s, ["", "false"]) |
                                 ~rules.valid_boolean(s),
                                 "pool MFA is OFF: cognito:mfa_enabled must be false or empty"))
    elif col == "email":
        checks.append(_check(Reason.INVALID_EMAIL, rules.valid_email, "not a valid email address"))
    elif col == "phone_number":
        checks.append(_check(Reason.INVALID_PHONE, rules.valid_phone,
                             "not an E.164 number (+ then country code and up to 15 digits)"))
    elif col == "birthdate":
        checks.append(_check(Reason.INVALID_BIRTHDATE, rules.valid_birthdate,
                             "not a real date written mm/dd/yyyy"))
        return checks                      # its 10..10 length is implied by the format
    elif spec is None:
        return checks

    if spec is None:
        return checks
    if spec.data_type == "Boolean":
        checks.append(_check(Reason.INVALID_BOOLEAN, rules.valid_boolean, "must be true, false or empty"))
    elif spec.data_type == "Number":
        # whole numbers only, as the local service decides U10 ("The value of <column> is not a whole
        # number."): a decimal passed here and then failed the import
        epoch = col == "updated_at"
        checks.append(_check(Reason.INVALID_NUMBER, lambda s: rules.valid_number(s, integer=True),
                             "not an integer (epoch seconds)" if epoch else "not a whole number"))
        lo, hi = spec.min_value, spec.max_value
        detail = f"outside {_bounds(lo, hi)}"
        if epoch and (hi is None or hi > EPOCH_SECONDS_MAX):
            hi = EPOCH_SECONDS_MAX
            detail = (f"outside {_bounds(lo, hi)} epoch seconds (a value after the year 3000 is a time in "
                      "milliseconds or microseconds: write the mapping's transform as {epoch: {unit: ms}})")
        if lo is not None or hi is not None:
            checks.append(_check(Reason.NUMBER_OUT_OF_RANGE, lambda s: rules.number_in_range(s, lo, hi), detail))
    elif spec.data_type == "DateTime":
        checks.append(_check(Reason.INVALID_DATETIME, rules.valid_datetime,
                             "not a real ISO 8601 date/time (2024-03-01, 2024-03-01T10:00:00Z, "
                             "2024-03-01 10:00+09:00)"))
    elif spec.data_type == "String" and ((spec.min_length or 0) > 1 or (spec.max_length or MAX_VALUE_BYTES)
                                         < MAX_VALUE_BYTES):
        # a non-empty value within 2,048 bytes has 1..2,048 characters: looser limits add nothing
        lo, hi = spec.min_length or None, spec.max_length
        checks.append(_check(Reason.STRING_LENGTH, lambda s: rules.length_between(s, lo, hi),
                             f"length outside {_bounds(lo, hi)} characters"))
    return checks


# The latest updated_at taken (3000-01-01T00:00:00Z). Cognito's schema bound is MinValue 0 alone (fact 9;
# an upper bound is undocumented, U10), so a time in milliseconds (13 digits since 2001) would import as a
# date ~50,000 years ahead; no real update time is after 3000, and every millisecond time after January
# 1971 is.
EPOCH_SECONDS_MAX = 32_503_680_000


def _ascii_only(col: str, spec: AttributeSpec | None) -> bool:
    """Whether the column's format rule below admits ASCII alone."""
    return (col in (MFA_ENABLED, "phone_number", "birthdate")
            or (spec is not None and spec.data_type in ("Boolean", "Number", "DateTime")))


def _formatted(col: str, spec: AttributeSpec | None) -> bool:
    """Whether the column has a format rule below, which no value with a control character meets (a
    username's or an email's admits Unicode letters, but no control character)."""
    return col in (USERNAME, "email") or _ascii_only(col, spec)


def _username_checks(contract: PoolContract) -> list[PoolCheck]:
    checks = [_check(Reason.INVALID_USERNAME, rules.valid_username,
                     "must be 1-128 letters, marks, symbols, digits or punctuation (no spaces or "
                     "control characters)")]
    if "email" in contract.username_attributes:
        checks.append(_check(Reason.INVALID_USERNAME, rules.valid_email,
                             "the pool signs users in by email: the username must be an email address"))
    elif "phone_number" in contract.username_attributes:
        checks.append(_check(Reason.INVALID_USERNAME, rules.valid_phone,
                             "the pool signs users in by phone: the username must be an E.164 number"))
    if "email" in contract.alias_attributes:
        checks.append(_check(Reason.USERNAME_LOOKS_LIKE_ALIAS,
                             lambda s: rules.not_like(s, rules.LOOKS_LIKE_EMAIL, needs=b"@"),
                             "email is an alias in this pool: the username must not look like an email"))
    if "phone_number" in contract.alias_attributes:
        checks.append(_check(Reason.USERNAME_LOOKS_LIKE_ALIAS,
                             lambda s: rules.not_like(s, rules.LOOKS_LIKE_PHONE, needs=b"+"),
                             "phone_number is an alias in this pool: the username must not look like a "
                             "phone number"))
    return checks


def _row_checks(contract: PoolContract) -> list[PoolCheck]:
    header = list(contract.csv_header)
    checks: list[PoolCheck] = []
    for attr, flag in VERIFIABLE:
        if attr in header and flag in header:
            checks.append(_check(
                Reason.VERIFIED_WITHOUT_VALUE,
                lambda df, a=attr, f=flag: ~(rules.in_values(df[f], ["true"]) & rules.empty(df[a])),
                f"{flag} is true but {attr} is empty", column=flag))
    flags = list(contract.auto_verified_flags)
    if flags:   # fact 5; a pool with none cannot import at all (PoolContract.problems)
        checks.append(_check(
            Reason.NO_AUTO_VERIFIED_TRUE,
            lambda df: np.logical_or.reduce([rules.in_values(df[f], ["true"]) for f in flags]),
            f"the pool auto-verifies {' / '.join(flags)}: at least one must be true",
            column=" / ".join(flags)))
    signs_in_by = [a for a in contract.username_attributes if a in header]
    if signs_in_by and USERNAME in header:   # fact 16 / U11, as the local service decides it
        checks.append(_check(
            Reason.INVALID_USERNAME,
            lambda df: np.logical_or.reduce([df[USERNAME].eq(df[a]).fillna(False).to_numpy(bool)
                                             for a in signs_in_by]),
            f"the pool signs users in by {' or '.join(signs_in_by)}: cognito:username must equal that value",
            column=USERNAME))
    checks.append(_check(
        Reason.ROW_TOO_LONG, lambda df: rules.row_fits(df, header, MAX_ROW_CHARS),
        f"the CSV line would be longer than {MAX_ROW_CHARS:,} characters", column=ROW))
    return checks


def _bounds(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"
