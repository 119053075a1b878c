"""The vectorised masks equal the per-value ones, and hide what they must."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.masking import mask_email, mask_phone, mask_series, mask_value, scrub_values

TRICKY = ["", None, "a@b.com", "bad@@x.org", "@x.org", "a@", "a@.com", "a@b.", "noat", "ü@ß.de",
          "x@y.z.w", "line\nbreak@x.jp", "+81901234567", "090-1234", "+1", "12345", "123456", "日本語",
          "a", "a@b@c.d", "Ｆｕｌｌ＠ｗｉｄｔｈ", " spaced@x.org ", "\x00nul", "\x1b[2J@x.org", "+8\x7f12345",
          "t\x01", "leak.me@example.org", "+81 90 1234 5678", "０９０１２３４５６７８", "Value 'Yamada' at 'name'"]


@pytest.mark.parametrize("column", ["email", "phone_number", "given_name", "email_verified",
                                    "custom:role", "cognito:mfa_enabled", "is_active"])
def test_mask_series_equals_mask_value(column: str) -> None:
    got = mask_series(column, pd.Series(TRICKY, dtype="string[pyarrow]", index=range(5, 5 + len(TRICKY))))
    assert got.index.tolist() == list(range(5, 5 + len(TRICKY)))
    assert got.tolist() == [mask_value(column, v) for v in TRICKY]


def test_mask_series_takes_object_columns() -> None:
    got = mask_series("email", pd.Series(["jane@example.com", None], dtype=object))
    assert got.tolist() == ["j***@e***.com", ""]


def test_masks_hide_the_value() -> None:
    assert mask_email("jane.doe@example.co.jp") == "j***@e***.jp"
    assert mask_phone("+819012345678") == "+81***78"
    assert "doe" not in mask_series("family_name", pd.Series(["doe"], dtype="string")).iloc[0]


def test_a_flag_column_holding_an_address_or_a_phone_number_is_masked() -> None:
    """Flags are shown as they are, to 16 characters: a mapping that reads a flag from the wrong column
    (``email_verified: {from: email}``) showed each user's address or phone number in rejects.csv and
    the report. Such values are scrubbed; a real flag is still shown as it is."""
    values = pd.Series(["taro.yamada@example.jp", "+81 90 1234 5678", "yes", "0", None], dtype="string[pyarrow]")
    for column in ["email_verified", "phone_number_verified", "is_active", "cognito:mfa_enabled"]:
        want = ["t***@e***.jp", "+81***78", "yes", "0", ""]
        assert mask_series(column, values).tolist() == want
        assert [mask_value(column, v) for v in values.tolist()[:4]] == want[:4]


def test_a_control_character_a_mask_keeps_is_shown_as_its_picture() -> None:
    """A damaged name's first character can be a NUL or an ESC: no report, log or terminal gets the byte."""
    values = pd.Series(["\x00Ann", "\x1b[31mred", "\x7f", "Ann"], dtype="string[pyarrow]")
    assert mask_series("given_name", values).tolist() == ["\u2400***", "\u241b***", "\u2421***", "A***"]
    assert mask_email("\x1b@x.org") == "\u241b***@x***.org"
    assert mask_value("email_verified", "t\x00") == "t\u2400"


def test_scrub_text_masks_what_an_aws_message_may_quote() -> None:
    from pipeline.masking import scrub_text

    quoted = ("1 validation error detected: Value 'jane.doe@example.com' at 'username' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+")
    assert scrub_text(quoted) == quoted.replace("jane.doe@example.com", "j***@e***.com")
    assert scrub_text("Value 'Yamada Taro' at 'name' is too long") == "Value 'Y***' at 'name' is too long"
    assert scrub_text("user +81 90-1234-5678 and mail taro@example.jp exist") == (
        "user +81***78 and mail t***@e***.jp exist")
    kept = "No csv file was uploaded for import-9sHxosU7BP (HTTP 400, 2 of 128 users)"
    assert scrub_text(kept) == kept


def test_scrub_quoted_masks_a_databases_quoted_values_and_keeps_its_names() -> None:
    from pipeline.masking import scrub_quoted

    masked = {
        'invalid input syntax for type bigint: "070-3311-4687"': 'invalid input syntax for type bigint: "0***"',
        'date/time field value out of range: "Tanaka"': 'date/time field value out of range: "T***"',
        'value "99999999999" is out of range for type integer': 'value "9***" is out of range for type integer',
        "Could not decode to UTF-8 column 'last_name' with text 'M\ufffdller'":
            "Could not decode to UTF-8 column 'last_name' with text 'M***'",
        # a keyword that only ends a word ("format" ends in "at", "within" in "in") keeps nothing
        'invalid input for format "0312345678"': 'invalid input for format "0***"',
        "value must lie within 'Yamada'": "value must lie within 'Y***'",
    }
    for text, want in masked.items():
        assert scrub_quoted(text) == want
    for kept in ['column "no_such_column" does not exist', 'syntax error at or near "SELEC"',
                 'relation "app_userz" does not exist', "Unknown column 'x' in 'field list'",
                 "Access denied for user 'root'@'localhost'", 'invalid byte sequence for encoding "UTF8": 0xfc',
                 "no such column: x"]:
        assert scrub_quoted(kept) == kept


def test_scrub_quoted_masks_a_value_with_a_quote_inside_or_cut_off() -> None:
    """A name's own quote (O'Brien, O"Brien) ended the quoted text there, and a value cut at its line
    break (only a message's first line is shown) or at 400 characters has no closing quote: the rest of
    the value was printed as written."""
    from pipeline.masking import scrub_quoted

    masked = {
        'invalid input syntax for type integer: "O"Brien Taro"': 'invalid input syntax for type integer: "O***"',
        "Truncated incorrect DOUBLE value: 'O'Brien Taro'": "Truncated incorrect DOUBLE value: 'O***'",
        'invalid input syntax for type integer: "taro.yamada@example.jp':
            'invalid input syntax for type integer: "t***"',
        'invalid value "Yamada" for "YYYY"': 'invalid value "Y***" for "Y***"',
    }
    for text, want in masked.items():
        assert scrub_quoted(text) == want
    for kept in ["column \"x\" doesn't exist", "Access denied for user 'root'@'localhost' (using password: NO)"]:
        assert scrub_quoted(kept) == kept


def test_a_refused_call_does_not_echo_the_users_data() -> None:
    import botocore.exceptions

    from pipeline.cognito import CognitoCallError, CognitoTarget
    from pipeline.settings import TargetSettings

    target = CognitoTarget.from_settings(TargetSettings(), endpoint_url="http://127.0.0.1:9")

    def refused(**_: object) -> None:
        raise botocore.exceptions.ClientError({"Error": {
            "Code": "InvalidParameterException",
            "Message": "1 validation error detected: Value 'jane.doe@example.com' at 'username' failed"}},
            "AdminGetUser")

    with pytest.raises(CognitoCallError) as caught:
        target._call("AdminGetUser", refused)
    assert "jane" not in str(caught.value) and "Value 'j***@e***.com' at 'username'" in str(caught.value)


def test_configuration_values_are_scrubbed_but_dates_and_codes_kept() -> None:
    """A mapping's filters as the report shows them: an address or a phone number, even in a list or a
    mapping, is masked; an ISO date (eight digits, like a phone number's) and a tenant code are not."""
    assert scrub_values({"exclude": ["ceo@example.com", ("+81 90-1234-5678",)], "code": "acme-jp", "n": 5,
                         "since": "2020-01-01", "day": "20200101", "at": "2020-01-01 10:00:00",
                         "nested": {"tel": "09012345678"}}) == {
        "exclude": ["c***@e***.com", ["+81***78"]], "code": "acme-jp", "n": 5, "since": "2020-01-01",
        "day": "20200101", "at": "2020-01-01 10:00:00", "nested": {"tel": "0***78"}}
