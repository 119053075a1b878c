"""The validator against the local service: every row the validator accepts imports (facts 4-17, U10).

Rows sit on the edges of each value rule; the validator's valid rows are written by the pipeline's own
writer and imported through the real HTTP path. The other direction is not asserted: the validator is
stricter on purpose in places (an E.164 length cap, lowercase booleans, no updated_at after the year
3000, a stricter email syntax), and rejects those rows with a reason instead.
"""

from __future__ import annotations

from pipeline.chunk import write_chunks
from pipeline.contract import PoolContract
from pipeline.validate import TenantValidator
from tests import poolfixtures as pf

SCHEMA = [
    {"Name": "age", "AttributeDataType": "Number", "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "150"}},
    {"Name": "since", "AttributeDataType": "DateTime"},
    {"Name": "vip", "AttributeDataType": "Boolean"},
    {"Name": "tenant", "AttributeDataType": "String",
     "StringAttributeConstraints": {"MinLength": "2", "MaxLength": "8"}},
]
EDGES = {
    "custom:age": ["0", "150", "-0", "007", "1.5", "99.5", "-1", "151", "1e2", "abc"],
    "custom:since": ["2024-02-29", "2024-03-01T10:00:00Z", "2024-03-01 10:00+09:00", "2024-03-01T10:00:00.123456",
                     "1700000000", "2024-13-01", "2023-02-29", "2024-03-01T24:00", "2024-03-01T10:60", "yesterday"],
    "custom:vip": ["true", "false", "TRUE", "1"],
    "custom:tenant": ["ab", "abcdefgh", "éé", "a", "abcdefghi"],
    "birthdate": ["02/29/2000", "12/31/1899", "02/29/1900", "1985-02-01", "13/01/1985"],
    "updated_at": ["0", "1471453471", "-5", "1.5", "+5", "1714525200000"],
    "phone_number": ["+14255550100", "+12", "+0123", "+1 425 555", "14255550100"],
    "email": ["o'brien+tag@mail.example.co.uk", "jürgen@bücher.de", "a@b", "a..b@example.com", "a b@example.com"],
    "name": ["Doe, John", "a\\b", "x" * 2048, "é" * 1024, "é" * 1025, "x" * 2049],
    "cognito:mfa_enabled": ["", "false", "true", "yes"],
}
USERNAMES = ["ユーザー", "Jürgen-名前_ü.é!+", "x" * 128, "  padded  ", "x" * 129, "a b", "zero\u200bwidth"]


def _rows() -> list[dict[str, str | None]]:
    """A good row (username user<i>, email user<i>@example.com) per edge value, one column changed."""
    changes = [{}, *({column: v} for column, values in EDGES.items() for v in values),
               *({"cognito:username": v} for v in USERNAMES)]
    return [pf.good_row("plain", i, given_name=None, **change) for i, change in enumerate(changes)]


def test_every_row_the_validator_accepts_imports(kit, tmp_path):
    pool = kit.pool(Schema=SCHEMA)
    contract = PoolContract.from_responses(kit.idp.get_csv_header(UserPoolId=pool),
                                           kit.idp.describe_user_pool(UserPoolId=pool))
    rows = _rows()
    part = TenantValidator(contract).validate(pf.frame(rows))
    assert 25 < len(part.valid) < len(rows), part.rejects.to_string()      # both sides of every rule
    (chunk,) = write_chunks([part.valid], list(contract.csv_header), tmp_path)
    job, lines = kit.run(pool, chunk.csv_path.read_bytes())
    failed = [(line, row) for line, row in zip(lines, part.valid.to_dict("records"), strict=True)
              if not line.endswith("- The import succeeded.")]
    assert not failed, failed
    assert job["ImportedUsers"] == len(part.valid)
