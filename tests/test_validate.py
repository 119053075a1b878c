"""Per-row rules: every rule with a row that passes and a row that fails, reasons and masked values."""

from __future__ import annotations

import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pytest

from pipeline.csvdialect import MAX_ROW_CHARS, encode_row
from pipeline.reasons import REJECT_COLUMNS, Reason
from pipeline.validate import TenantValidator, build_schema, prepare_frame
from tests import poolfixtures as pf

STRING = pd.StringDtype("pyarrow")


def run(kind: str, *rows: dict):
    validator = TenantValidator(pf.contract(kind))
    return validator.validate(pf.frame(list(rows)))


def lines(rejects: pd.DataFrame, legacy_id: str) -> set[tuple[str, str, str]]:
    mine = rejects[rejects["legacy_id"] == legacy_id]
    return {(r.reason, r.column, r.masked_value) for r in mine.itertuples()}


def check(kind: str, overrides: dict, expected: set | None) -> None:
    """Row 1 is the good row; row 2 carries ``overrides`` and must break exactly ``expected``."""
    part = run(kind, pf.good_row(kind, 1), pf.good_row(kind, 2, **overrides))
    assert "1" in set(part.valid["_legacy_id"]), part.rejects.to_string()
    if expected is None:
        assert len(part.valid) == 2, part.rejects.to_string()
        assert part.rejects.empty
    else:
        assert list(part.valid["_legacy_id"]) == ["1"]
        assert lines(part.rejects, "2") == expected


USER = "cognito:username"
MFA = "cognito:mfa_enabled"

FAILING = [
    # (pool, overrides, reason, column, masked value)
    ("plain", {USER: None}, Reason.MISSING_REQUIRED, USER, ""),
    ("plain", {USER: "   "}, Reason.MISSING_REQUIRED, USER, ""),
    ("plain", {USER: "ann smith"}, Reason.INVALID_USERNAME, USER, "a***"),
    ("plain", {USER: "ann\tsmith"}, Reason.INVALID_USERNAME, USER, "a***"),
    ("plain", {USER: "ann\u0007"}, Reason.INVALID_USERNAME, USER, "a***"),
    ("plain", {USER: "ann\u00a0smith"}, Reason.INVALID_USERNAME, USER, "a***"),
    ("plain", {USER: "x" * 129}, Reason.INVALID_USERNAME, USER, "x***"),
    ("email_username", {USER: "ann"}, Reason.INVALID_USERNAME, USER, "a***"),
    ("alias", {USER: "ann@example.com"}, Reason.USERNAME_LOOKS_LIKE_ALIAS, USER, "a***"),
    ("alias", {USER: "+447900123456"}, Reason.USERNAME_LOOKS_LIKE_ALIAS, USER, "+***"),
    ("plain", {"email": "ann.example.com"}, Reason.INVALID_EMAIL, "email", "a***"),
    ("plain", {"email": "ann@exa mple.com"}, Reason.INVALID_EMAIL, "email", "a***@e***.com"),
    ("plain", {"email": "ann@example"}, Reason.INVALID_EMAIL, "email", "a***@e***"),
    ("plain", {"email": "ann@example.123"}, Reason.INVALID_EMAIL, "email", "a***@e***.123"),
    ("plain", {"email": "jürgen@@bücher.de"}, Reason.INVALID_EMAIL, "email", "j***@@***.de"),
    ("plain", {"phone_number": "07946000000"}, Reason.INVALID_PHONE, "phone_number", "0***00"),
    ("plain", {"phone_number": "+44 20 7946 0000"}, Reason.INVALID_PHONE, "phone_number", "+44***00"),
    ("plain", {"phone_number": "+0447946000000"}, Reason.INVALID_PHONE, "phone_number", "+04***00"),
    ("plain", {"phone_number": "+4420794600000012"}, Reason.INVALID_PHONE, "phone_number", "+44***12"),
    ("custom", {"custom:vip": "TRUE"}, Reason.INVALID_BOOLEAN, "custom:vip", "T***"),
    ("custom", {"custom:vip": "1"}, Reason.INVALID_BOOLEAN, "custom:vip", "1***"),
    ("custom", {MFA: "yes"}, Reason.INVALID_BOOLEAN, MFA, "yes"),
    ("plain", {"birthdate": "1985-02-01"}, Reason.INVALID_BIRTHDATE, "birthdate", "1***"),
    ("plain", {"birthdate": "2/1/1985"}, Reason.INVALID_BIRTHDATE, "birthdate", "2***"),
    ("plain", {"birthdate": "02/30/1985"}, Reason.INVALID_BIRTHDATE, "birthdate", "0***"),
    ("plain", {"birthdate": "02/29/1900"}, Reason.INVALID_BIRTHDATE, "birthdate", "0***"),
    ("plain", {"birthdate": "13/01/1985"}, Reason.INVALID_BIRTHDATE, "birthdate", "1***"),
    ("plain", {"updated_at": "yesterday"}, Reason.INVALID_NUMBER, "updated_at", "y***"),
    ("plain", {"updated_at": "1700000000.5"}, Reason.INVALID_NUMBER, "updated_at", "1***"),
    ("plain", {"updated_at": "-5"}, Reason.NUMBER_OUT_OF_RANGE, "updated_at", "-***"),
    ("plain", {"updated_at": "1714525200000"}, Reason.NUMBER_OUT_OF_RANGE, "updated_at", "1***"),   # ms
    ("plain", {"updated_at": "32503680001"}, Reason.NUMBER_OUT_OF_RANGE, "updated_at", "3***"),
    ("custom", {"custom:score": "101"}, Reason.NUMBER_OUT_OF_RANGE, "custom:score", "1***"),
    ("custom", {"custom:score": "-1"}, Reason.NUMBER_OUT_OF_RANGE, "custom:score", "-***"),
    ("custom", {"custom:score": "-0.5"}, Reason.INVALID_NUMBER, "custom:score", "-***"),
    ("custom", {"custom:score": "99.5"}, Reason.INVALID_NUMBER, "custom:score", "9***"),   # U10: whole numbers
    ("custom", {"custom:score": "4x"}, Reason.INVALID_NUMBER, "custom:score", "4***"),
    ("custom", {"custom:joined": "last tuesday"}, Reason.INVALID_DATETIME, "custom:joined", "l***"),
    ("custom", {"custom:joined": "1700000000"}, Reason.INVALID_DATETIME, "custom:joined", "1***"),   # U10
    ("custom", {"custom:joined": "2024-13-01"}, Reason.INVALID_DATETIME, "custom:joined", "2***"),
    ("custom", {"custom:joined": "2023-02-29T10:00Z"}, Reason.INVALID_DATETIME, "custom:joined", "2***"),
    ("custom", {"custom:joined": "2024-03-01T24:00"}, Reason.INVALID_DATETIME, "custom:joined", "2***"),
    ("custom", {"custom:tenant_id": "ab"}, Reason.STRING_LENGTH, "custom:tenant_id", "a***"),
    ("custom", {"custom:tenant_id": "t" * 37}, Reason.STRING_LENGTH, "custom:tenant_id", "t***"),
    ("custom", {"custom:code": "123456789"}, Reason.STRING_LENGTH, "custom:code", "1***"),
    ("plain", {"given_name": "é" * 1025}, Reason.VALUE_TOO_LONG, "given_name", "é***"),
    ("plain", {"given_name": "x" * 2049}, Reason.VALUE_TOO_LONG, "given_name", "x***"),   # once, not twice
    ("plain", {"given_name": "Ann\nMarie"}, Reason.UNCARRIABLE_VALUE, "given_name", "A***"),
    ("plain", {"given_name": "Ann\rMarie"}, Reason.UNCARRIABLE_VALUE, "given_name", "A***"),
    ("plain", {"address": "Flat 2\\ "}, Reason.UNCARRIABLE_VALUE, "address", "F***"),
    ("plain", {"family_name": "M\ufffdller"}, Reason.UNDECODABLE_TEXT, "family_name", "M***"),
    ("custom", {"nickname": "\ufffd"}, Reason.UNDECODABLE_TEXT, "nickname", "\ufffd***"),
    ("plain", {"given_name": "Ann\x00"}, Reason.CONTROL_CHARACTER, "given_name", "A***"),
    ("plain", {"family_name": "Sm\x7fith"}, Reason.CONTROL_CHARACTER, "family_name", "S***"),
    ("custom", {"nickname": "\x1b[2Jx"}, Reason.CONTROL_CHARACTER, "nickname", "\u241b***"),  # ESC shown as ␛
    ("plain", {"family_name": "MÃ¼ller"}, Reason.DOUBLE_ENCODED_TEXT, "family_name", "M***"),
    ("plain", {"given_name": "æ—¥æœ¬"}, Reason.DOUBLE_ENCODED_TEXT, "given_name", "æ***"),
    ("plain", {USER: "JosÃ©"}, Reason.DOUBLE_ENCODED_TEXT, USER, "J***"),
    ("plain", {"name": "JÃ¼rgen Müller"}, Reason.DOUBLE_ENCODED_TEXT, "name", "J***"),   # in part
    ("plain", {"email": None}, Reason.VERIFIED_WITHOUT_VALUE, "email_verified", "true"),
    ("custom", {"phone_number_verified": "true"}, Reason.VERIFIED_WITHOUT_VALUE,
     "phone_number_verified", "true"),         # flags are not personal data: shown as they are
    ("plain", {"email_verified": "false"}, Reason.NO_AUTO_VERIFIED_TRUE, "email_verified", "false"),
    ("plain", {"email_verified": None}, Reason.NO_AUTO_VERIFIED_TRUE, "email_verified", ""),
    ("mfa_on", {"phone_number_verified": "false"}, Reason.NO_AUTO_VERIFIED_TRUE,
     "phone_number_verified", "false"),
    ("custom", {"email_verified": "false"}, Reason.NO_AUTO_VERIFIED_TRUE,
     "email_verified / phone_number_verified", ""),
    ("mfa_on", {MFA: "false"}, Reason.MFA_CONFLICT, MFA, "false"),
    ("plain", {MFA: "true"}, Reason.MFA_CONFLICT, MFA, "true"),
    ("mfa_on", {"family_name": None}, Reason.MISSING_REQUIRED, "family_name", ""),
]


@pytest.mark.parametrize("kind, overrides, reason, column, masked", FAILING,
                         ids=[f"{r.value}-{i}" for i, (_, _, r, _, _) in enumerate(FAILING)])
def test_rule_rejects(kind, overrides, reason, column, masked) -> None:
    check(kind, overrides, {(reason.value, column, masked)})


def test_an_updated_at_in_milliseconds_is_rejected_with_the_epoch_unit_to_give() -> None:
    """The pool's schema bounds updated_at by 0 alone (fact 9), so a time in milliseconds would import
    as a date ~50,000 years ahead; the rejection says which argument reads the column right."""
    part = run("plain", pf.good_row("plain", 1), pf.good_row("plain", 2, updated_at="1714525200000"))
    (detail,) = part.rejects["detail"]
    assert "after the year 3000" in detail and "{epoch: {unit: ms}}" in detail


PASSING = [
    ("plain", {USER: "Jürgen-名前_ü.é!+"}),
    ("plain", {USER: "x" * 128}),
    ("plain", {USER: "  padded  "}),                     # Cognito trims; so do we
    ("email_username", {USER: "Ann.Other@Example.com", "email": "Ann.Other@Example.com"}),
    ("alias", {USER: "ann.smith"}),
    ("alias", {USER: "4479001234"}),                     # digits without "+" are not a phone number
    ("plain", {USER: "ann@example.com"}),                # no alias: an email-like username is fine
    ("plain", {"email": "o'brien+tag@mail.example.co.uk"}),
    ("plain", {"email": "jürgen@bücher.de"}),            # non-ASCII: decided by email-validator
    ("plain", {"phone_number": "+447946000000", "phone_number_verified": "false"}),
    ("plain", {"phone_number": "+12"}),
    ("custom", {"custom:vip": "false"}),
    ("plain", {"birthdate": "02/29/2000"}),
    ("plain", {"birthdate": "12/31/1899"}),
    ("plain", {"updated_at": "0"}),
    ("plain", {"updated_at": "32503680000"}),            # 3000-01-01T00:00:00Z, the latest taken
    ("custom", {"custom:score": "100"}),
    ("custom", {"custom:joined": "2024-03-01T10:00:00Z"}),
    ("custom", {"custom:joined": "2024-02-29 23:59:59.123456+05:30"}),
    ("custom", {"custom:tenant_id": "abc", "custom:code": "12345678"}),
    ("plain", {"given_name": "é" * 1024}),               # 2,048 bytes exactly
    ("plain", {"given_name": "O'Neil, Jr", "address": "a\\b"}),
    ("plain", {"family_name": "Müller", "given_name": "ｶﾀｶﾅ\ufffe"}),  # neighbours of U+FFFD (EF BF BD)
    ("plain", {"family_name": "van\tDijk", "given_name": "\u0085\u2400"}),   # a tab, C1 NEL, a picture
    ("plain", {"family_name": "JOÃO", "given_name": "Ærøskøbing"}),     # Ã before ASCII; real Latin-1 letters
    ("plain", {"family_name": "KRÍŽ", "given_name": "VÍŠEK"}),          # their bytes are UTF-8 too: real names
    ("plain", {"email_verified": "true"}),
    ("plain", {"phone_number": None, "phone_number_verified": "false"}),
    ("custom", {"email_verified": "false", "phone_number": "+447946000001", "phone_number_verified": "true"}),
    ("custom", {"email_verified": "false", "phone_number": "+447946000001",
                "phone_number_verified": "true", "email": None}),
    ("mfa_on", {MFA: "true"}),
    ("mfa_on", {MFA: None}),                             # current rule: blank is allowed
    ("plain", {MFA: None}),
    ("custom", {MFA: "false"}),
    ("custom", {MFA: "true"}),
]


@pytest.mark.parametrize("kind, overrides", PASSING, ids=[f"{k}-{i}" for i, (k, _) in enumerate(PASSING)])
def test_rule_accepts(kind, overrides) -> None:
    check(kind, overrides, None)


def _line_length_row(kind: str, target: int) -> dict:
    """A good row padded (with commas, which escape to two characters) to exactly ``target`` characters."""
    contract = pf.contract(kind)
    row = pf.good_row(kind, 2)
    fillers = ["name", "family_name", "middle_name", "nickname", "profile", "picture", "website", "address"]

    def length(r: dict) -> int:
        return len(encode_row([(r.get(c) or "") for c in contract.csv_header]))

    rest = target - length(row)
    for col in fillers:
        take = min(rest, 2000)
        row[col] = ("a," * (take // 3)) + "b" * (take - 3 * (take // 3))   # "a," writes as 3 characters
        rest -= take
    assert length(row) == target
    return row


def test_row_length_limit_counts_escaped_commas() -> None:
    check("plain", _line_length_row("plain", MAX_ROW_CHARS), None)
    check("plain", _line_length_row("plain", MAX_ROW_CHARS + 1), {(Reason.ROW_TOO_LONG.value, "", "")})


def test_row_breaking_several_rules_has_one_line_each_and_is_rejected_once() -> None:
    bad = pf.good_row("plain", 2, **{USER: "a b", "email": "nope", "birthdate": "1985", MFA: "true"})
    part = run("plain", pf.good_row("plain", 1), bad, pf.good_row("plain", 3))
    assert lines(part.rejects, "2") == {
        ("invalid_username", USER, "a***"), ("invalid_email", "email", "n***"),
        ("invalid_birthdate", "birthdate", "1***"), ("mfa_conflict", MFA, "true")}
    assert part.rejected_rows == 1
    assert list(part.valid["_legacy_id"]) == ["1", "3"]


def test_every_row_is_valid_or_rejected_exactly_once() -> None:
    rows = [pf.good_row("custom", i, **({"custom:score": "500"} if i % 3 == 0 else {})
                        | ({"email": "x"} if i % 4 == 0 else {})) for i in range(1, 41)]
    part = run("custom", *rows)
    valid_ids = set(part.valid["_legacy_id"])
    rejected_ids = set(part.rejects["legacy_id"])
    assert not valid_ids & rejected_ids
    assert valid_ids | rejected_ids == {str(i) for i in range(1, 41)}
    assert len(part.valid) + part.rejected_rows == 40
    assert rejected_ids == {str(i) for i in range(1, 41) if i % 3 == 0 or i % 4 == 0}


def test_valid_frame_shape() -> None:
    contract = pf.contract("mfa_on")
    frame = pf.frame([pf.good_row("mfa_on", 1, given_name="  Ann  "), pf.good_row("mfa_on", 2)])
    frame.index = pd.Index([10, 11])
    part = TenantValidator(contract).validate(frame)
    assert list(part.valid.columns) == list(contract.csv_header) + ["_legacy_id", "_tenant"]
    assert (part.valid.dtypes == STRING).all()
    assert not part.valid.isna().any().any()
    assert part.valid.loc[10, "given_name"] == "Ann"
    assert part.valid.loc[10, "nickname"] == ""                 # column not produced by the mapping
    assert part.valid.loc[11, "_tenant"] == "acme"
    assert list(part.rejects.columns) == REJECT_COLUMNS


def test_legacy_ids_stay_as_the_source_has_them() -> None:
    """Values are trimmed, as Cognito trims them; the legacy id is the source's key, not a value. A
    CHAR(n) primary key read from PostgreSQL comes padded ('A1  '): trimmed, the ledger's ids no longer
    matched the source's, and every run counted its users as gone from the source and as without an
    outcome (exit 5, for good); ' 7' and '7' would even share one outcome."""
    part = run("mfa_on", pf.good_row("mfa_on", 1, _legacy_id="A1  "), pf.good_row("mfa_on", 2, _legacy_id=" 7"),
               pf.good_row("mfa_on", 3, _legacy_id="7"), pf.good_row("mfa_on", 4, _legacy_id="B2  ", email="x"))
    assert list(part.valid["_legacy_id"]) == ["A1  ", " 7", "7"]
    assert set(part.rejects["legacy_id"]) == {"B2  "}


def test_rejects_frame_columns_and_types() -> None:
    part = run("plain", pf.good_row("plain", 7, email="broken"))
    assert list(part.rejects.columns) == REJECT_COLUMNS
    assert (part.rejects.dtypes == STRING).all()
    row = part.rejects.iloc[0]
    assert (row.legacy_id, row.tenant, row.reason, row.column) == ("7", "acme", "invalid_email", "email")
    assert row.detail == "not a valid email address"


def test_rejects_never_carry_raw_personal_data() -> None:
    secrets = {"email": "jane.doe@private-mail.org", "phone_number": "+44 7946 000123",
               "given_name": "Jane\nDoe", "birthdate": "1985-12-24", USER: "jane doe"}
    part = run("alias", pf.good_row("alias", 1, **secrets))
    assert part.rejected_rows == 1
    text = part.rejects.to_csv(index=False)
    for value in secrets.values():
        for piece in value.replace("\n", " ").split():
            if len(piece) > 3:
                assert piece not in text


def test_duplicate_index_and_empty_frame() -> None:
    validator = TenantValidator(pf.contract("plain"))
    frame = pf.frame([pf.good_row("plain", 1), pf.good_row("plain", 2, email="x")])
    frame.index = pd.Index([5, 5])
    part = validator.validate(frame)
    assert list(part.valid["_legacy_id"]) == ["1"] and list(part.rejects["legacy_id"]) == ["2"]
    empty = validator.validate(frame.iloc[:0])
    assert empty.valid.empty and empty.rejects.empty
    assert list(empty.valid.columns) == list(validator.contract.csv_header) + ["_legacy_id", "_tenant"]


def test_schema_checks_are_named_by_reason() -> None:
    contract = pf.contract("custom")
    schema = build_schema(contract)
    assert isinstance(schema, pa.DataFrameSchema)
    assert list(schema.columns) == list(contract.csv_header)
    names = {c.name for col in schema.columns.values() for c in col.checks} | {c.name for c in schema.checks}
    assert names <= {r.value for r in Reason}
    frame = prepare_frame(pf.frame([pf.good_row("custom", 1, **{"custom:score": "x", "email": "y"})]),
                          contract)
    with pytest.raises(pandera.errors.SchemaErrors) as exc:
        schema.validate(frame, lazy=True)
    cases = exc.value.failure_cases     # one line per failed check: the rows are in check_output
    failed = set(zip(cases["column"], cases["check"], strict=True))
    assert failed == {("custom:score", "invalid_number"), ("email", "invalid_email")}
    assert [list(err.check_output) for err in exc.value.schema_errors] == [[False], [False]]


def test_schema_still_checks_column_dtypes_and_leaves_other_schemas_alone() -> None:
    """The lean backends (validation/backend.py) skip failure-case tables, not the dtype rule; a plain
    pandera schema in the same process keeps its full failure cases."""
    contract = pf.contract("custom")
    frame = prepare_frame(pf.frame([pf.good_row("custom", 1)]), contract)
    frame["updated_at"] = pd.Series([5], dtype="int64")
    with pytest.raises(pandera.errors.SchemaErrors) as exc:
        build_schema(contract).validate(frame, lazy=True)
    assert "WRONG_DATATYPE" in exc.value.error_counts
    assert "expected series 'updated_at' to have type string[pyarrow], got int64" in str(exc.value)

    plain = pa.DataFrameSchema({"n": pa.Column(int, pa.Check.ge(0))})
    with pytest.raises(pandera.errors.SchemaErrors) as exc:
        plain.validate(pd.DataFrame({"n": [1, -2, -3]}), lazy=True)
    assert list(exc.value.failure_cases["failure_case"]) == [-2, -3]
    assert list(exc.value.failure_cases["index"]) == [1, 2]


def test_the_lean_backend_still_refuses_a_null_in_a_column() -> None:
    """Its null count is read from Arrow (``_ColumnBackend.check_nullable``), not from a scan: a NA that
    reached the schema (prepare_frame makes none) is still a SERIES_CONTAINS_NULLS error."""
    contract = pf.contract("custom")
    frame = prepare_frame(pf.frame([pf.good_row("custom", 1), pf.good_row("custom", 2)]), contract)
    build_schema(contract).validate(frame, lazy=True)
    frame["name"] = pd.Series(["Ann", None], dtype=pd.StringDtype("pyarrow"))
    with pytest.raises(pandera.errors.SchemaErrors) as exc:
        build_schema(contract).validate(frame, lazy=True)
    assert "SERIES_CONTAINS_NULLS" in exc.value.error_counts


def test_a_partition_that_leaves_a_column_empty_is_judged_as_one_that_fills_it() -> None:
    """pandera is given no column that a partition leaves empty and whose every check passes an empty
    value: the next partition that fills it with a bad value is still rejected for it, and a required
    column left empty still is too."""
    validator = TenantValidator(pf.contract("plain"))
    empty = validator.validate(pf.frame([pf.good_row("plain", 1), pf.good_row("plain", 2)]))
    assert len(empty.valid) == 2 and empty.rejects.empty
    filled = validator.validate(pf.frame([pf.good_row("plain", 3, nickname="ok"),
                                          pf.good_row("plain", 4, nickname="tab\x01x")]))
    assert list(filled.rejects[["legacy_id", "reason", "column"]].itertuples(index=False, name=None)) == \
        [("4", "control_character", "nickname")]
    again = validator.validate(pf.frame([pf.good_row("plain", 5),
                                         pf.good_row("plain", 6, **{"cognito:username": None})]))
    assert list(again.rejects[["legacy_id", "reason"]].itertuples(index=False, name=None)) == \
        [("6", "missing_required")]


def test_a_column_left_empty_runs_no_check_that_passes_blanks() -> None:
    """A pool's unused attribute costs no check call; a column that is filled, or whose checks do not
    all pass blanks (a required one), still runs every check."""
    from pipeline.validation.backend import PoolCheck, PoolColumn, PoolSchema

    calls: list[str] = []

    def check(name: str, blank_passes: bool) -> PoolCheck:
        def run(s: pd.Series) -> pd.Series:
            calls.append(name)
            return s.ne("x")
        return PoolCheck(run, name=name, blank_passes=blank_passes)

    text = pd.StringDtype("pyarrow")
    schema = PoolSchema({"unused": PoolColumn(text, checks=[check("a", True), check("b", True)]),
                         "required": PoolColumn(text, checks=[check("c", True), check("d", False)]),
                         "filled": PoolColumn(text, checks=[check("e", True)])})
    frame = pd.DataFrame({"unused": ["", ""], "required": ["", ""], "filled": ["x", "y"]}, dtype=text)
    with pytest.raises(pandera.errors.SchemaErrors) as exc:
        schema.validate(frame, lazy=True)
    assert calls == ["c", "d", "e"]
    assert exc.value.error_counts == {"DATAFRAME_CHECK": 1}


def test_missing_header_column_in_input_is_empty() -> None:
    row = pf.good_row("mfa_on", 1)
    del row["family_name"]
    part = run("mfa_on", row)
    assert lines(part.rejects, "1") == {("missing_required", "family_name", "")}


def test_email_username_pools_need_the_username_to_be_the_email() -> None:
    """U11 as the local service decides it: cognito:username must equal the email cell."""
    good = pf.good_row("email_username", 1)
    other = pf.good_row("email_username", 2, **{"cognito:username": "someone.else@example.com"})
    part = run("email_username", good, other)
    assert list(part.valid["_legacy_id"]) == ["1"]
    assert lines(part.rejects, "2") == {("invalid_username", "cognito:username", "s***")}


@pytest.mark.parametrize("limit", [0, 5, 9, 10, 11, 40, 16_000])
def test_row_fits_agrees_with_the_exact_line_length_whichever_path_it_takes(limit) -> None:
    """row_fits decides from a per-column bound when it can; either way it must equal the exact count."""
    from pipeline.validation import rules

    frame = pd.DataFrame({"a": ["x,y", "", "ÄÖ,", "plain"], "b": ["", "", "", ""], "c": ["1", "22", ",", "山田"]},
                         dtype="string[pyarrow]")
    exact = rules.csv_line_length(frame, ["a", "b", "c"]) <= limit
    assert list(rules.row_fits(frame, ["a", "b", "c"], limit)) == list(exact)


def _dropping(kind: str, *rows: dict):
    return TenantValidator(pf.contract(kind), invalid_optional="drop").validate(pf.frame(list(rows)))


def test_invalid_optional_drop_imports_the_user_without_the_value() -> None:
    """policies.invalid_optional: drop. Row 2's phone (and its verified flag), birthdate and custom score
    break their rules: the user stays valid without them, and each value is listed (masked) as dropped.
    Row 3 also breaks a rule no drop can mend (a username with a space): rejected for every rule it broke."""
    bad = {"phone_number": "07946000000", "phone_number_verified": "true", "birthdate": "1990-02-30",
           "custom:score": "101"}
    part = _dropping("custom", pf.good_row("custom", 1), pf.good_row("custom", 2, **bad),
                     pf.good_row("custom", 3, **bad, **{USER: "user 3"}))
    assert list(part.valid["_legacy_id"]) == ["1", "2"]
    kept = part.valid.set_index("_legacy_id").loc["2"]
    assert (kept["phone_number"], kept["phone_number_verified"], kept["birthdate"], kept["custom:score"]) == \
        ("", "false", "", "")
    assert (kept["email"], kept["email_verified"], kept["given_name"]) == ("user2@example.com", "true", "Ann")
    assert lines(part.dropped, "2") == {(Reason.INVALID_PHONE, "phone_number", "0***00"),
                                       (Reason.INVALID_BIRTHDATE, "birthdate", "1***"),
                                       (Reason.NUMBER_OUT_OF_RANGE, "custom:score", "1***")}
    assert lines(part.dropped, "3") == set()
    assert {r for r, _, _ in lines(part.rejects, "3")} == {
        Reason.INVALID_USERNAME, Reason.INVALID_PHONE, Reason.INVALID_BIRTHDATE, Reason.NUMBER_OUT_OF_RANGE}


def test_invalid_optional_drop_rejects_a_user_left_without_an_auto_verified_attribute_for_the_value() -> None:
    """The plain pool auto-verifies email alone: dropping a verified but invalid email would leave nothing
    verified, so the user is rejected as without the policy, for the invalid email (its cause), not for
    no_auto_verified_true. An invalid email that was not the verified one is dropped."""
    part = _dropping("alias", pf.good_row("alias", 1, email="ann.example.com"),
                     pf.good_row("alias", 2, email="bob.example.com", phone_number="+447900123456",
                                 phone_number_verified="true"))
    plain = _dropping("plain", pf.good_row("plain", 3, email="cy.example.com"))
    assert list(plain.valid["_legacy_id"]) == [] and plain.dropped is not None and plain.dropped.empty
    assert lines(plain.rejects, "3") == {(Reason.INVALID_EMAIL, "email", "c***")}
    assert list(part.valid["_legacy_id"]) == ["2"]
    assert lines(part.rejects, "1") == {(Reason.INVALID_EMAIL, "email", "a***")}
    assert lines(part.dropped, "2") == {(Reason.INVALID_EMAIL, "email", "b***")}
    kept = part.valid.set_index("_legacy_id").loc["2"]
    assert (kept["email"], kept["email_verified"], kept["phone_number_verified"]) == ("", "false", "true")


@pytest.mark.parametrize("kind, overrides, reason", [
    ("plain", {USER: "ann smith"}, Reason.INVALID_USERNAME),                      # the username
    ("email_username", {USER: "ann.example.com", "email": "ann.example.com"}, Reason.INVALID_USERNAME),
    ("mfa_on", {"family_name": None}, Reason.MISSING_REQUIRED),                   # a required attribute
    ("plain", {"email_verified": "yes"}, Reason.INVALID_BOOLEAN),                 # a verified flag
    ("plain", {MFA: "maybe"}, Reason.INVALID_BOOLEAN),                            # the MFA setting
])
def test_invalid_optional_drop_never_drops_what_a_user_signs_in_with_or_the_pool_requires(
        kind: str, overrides: dict, reason: Reason) -> None:
    part = _dropping(kind, pf.good_row(kind, 1), pf.good_row(kind, 2, **overrides))
    assert list(part.valid["_legacy_id"]) == ["1"]
    assert reason in {r for r, _, _ in lines(part.rejects, "2")}
    assert part.dropped is None or part.dropped.empty


def test_without_the_policy_nothing_is_dropped() -> None:
    part = run("plain", pf.good_row("plain", 1), pf.good_row("plain", 2, phone_number="07946000000"))
    assert list(part.valid["_legacy_id"]) == ["1"] and part.dropped is None
    assert lines(part.rejects, "2") == {(Reason.INVALID_PHONE, "phone_number", "0***00")}
