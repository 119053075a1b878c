"""The vectorised masks equal the per-value ones, and hide what they must."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.masking import mask_email, mask_phone, mask_series, mask_value

TRICKY = ["", None, "a@b.com", "bad@@x.org", "@x.org", "a@", "a@.com", "a@b.", "noat", "ü@ß.de",
          "x@y.z.w", "line\nbreak@x.jp", "+81901234567", "090-1234", "+1", "12345", "123456", "日本語",
          "a", "a@b@c.d", "Ｆｕｌｌ＠ｗｉｄｔｈ", " spaced@x.org "]


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
