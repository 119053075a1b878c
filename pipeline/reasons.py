"""Why a source row did not go to Cognito: one enum shared by validation, the rejects file and reports."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # policies applied by the mapping
    SOFT_DELETED = "soft_deleted"
    DISABLED = "disabled"
    FILTERED = "filtered"
    UNCARRIABLE_VALUE = "uncarriable_value"        # newline or other value Cognito's CSV cannot carry
    TRANSFORM_FAILED = "transform_failed"          # e.g. a phone number that cannot become E.164
    # per-value rules from the pool contract
    MISSING_REQUIRED = "missing_required"
    INVALID_USERNAME = "invalid_username"
    USERNAME_LOOKS_LIKE_ALIAS = "username_looks_like_alias"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    INVALID_BOOLEAN = "invalid_boolean"
    INVALID_BIRTHDATE = "invalid_birthdate"
    INVALID_NUMBER = "invalid_number"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    INVALID_DATETIME = "invalid_datetime"          # a custom DateTime attribute that is not a real ISO 8601 date/time
    STRING_LENGTH = "string_length"
    VALUE_TOO_LONG = "value_too_long"              # over 2,048 bytes
    ROW_TOO_LONG = "row_too_long"                  # over 16,000 characters in the CSV line
    UNDECODABLE_TEXT = "undecodable_text"          # bytes that were not UTF-8 in the source (read as U+FFFD)
    CONTROL_CHARACTER = "control_character"        # NUL, ESC, DEL or another control character but tab
    DOUBLE_ENCODED_TEXT = "double_encoded_text"    # UTF-8 once read as Latin-1 and stored again (MÃ¼ller)
    # per-row rules
    VERIFIED_WITHOUT_VALUE = "verified_without_value"
    NO_AUTO_VERIFIED_TRUE = "no_auto_verified_true"
    MFA_CONFLICT = "mfa_conflict"
    # whole-tenant rules
    DUPLICATE_USERNAME = "duplicate_username"
    DUPLICATE_EMAIL = "duplicate_email"
    DUPLICATE_PHONE = "duplicate_phone"
    DUPLICATE_VALUE = "duplicate_value"            # another column the mapping asks to be unique


class Outcome(StrEnum):
    """The one final outcome of every source user (reconciliation adds them up)."""

    IMPORTED = "imported"
    SKIPPED = "skipped"        # already present in the pool
    REJECTED = "rejected"      # by our validation or a mapping policy, with a Reason
    FAILED = "failed"          # by Cognito, with its message


IN_POOL = (Outcome.IMPORTED.value, Outcome.SKIPPED.value)   # the outcomes of users the pool holds


# Columns of every rejects frame and of the rejects file (one line per (row, rule) broken).
REJECT_COLUMNS = ["legacy_id", "tenant", "reason", "column", "masked_value", "detail"]
