"""Whole-file checks (facts 6, 12, 30; U1, U7, U12): a file that cannot be imported fails the job."""

from __future__ import annotations

import time

import pytest

from pipeline.csvdialect import MAX_FILE_BYTES
from pipeline.localcognito.processing import JobFailure, read_rows
from tests.localcognito.conftest import user

TOO_MANY = "Too many users have failed or been skipped during the import."


def failed_with(kit, pool, body: bytes) -> dict:
    job, lines = kit.run(pool, body)
    assert job["Status"] == "Failed" and lines == []
    assert (job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"]) == (0, 0, 0)
    assert kit.users(pool) == {}
    return job


def test_bom_fails_the_job(kit):
    pool = kit.pool()
    job = failed_with(kit, pool, b"\xef\xbb\xbf" + kit.csv(pool, [user("bom")]))
    assert job["CompletionMessage"] == ("The CSV file starts with a byte order mark; it must be UTF-8 "
                                        "without one.")


def test_not_utf8_fails_the_job(kit):
    pool = kit.pool()
    body = kit.csv(pool, [user("latin")]).replace(b"latin", b"lat\xe9n", 1)
    assert "not valid UTF-8" in failed_with(kit, pool, body)["CompletionMessage"]


def test_header_must_be_exactly_the_pool_header(kit):                         # U1
    pool = kit.pool()
    header = kit.header(pool)
    missing = failed_with(kit, pool, kit.csv(pool, [user("h")], header=[c for c in header if c != "locale"]))
    assert missing["CompletionMessage"] == ("The CSV header does not match the user pool's CSV header "
                                            "(missing: locale).")
    unknown = failed_with(kit, pool, kit.csv(pool, [user("h")], header=header + ["password_hash"]))
    assert unknown["CompletionMessage"].endswith("(unknown: password_hash).")


def test_any_column_order_and_crlf_work(kit):                                 # fact 3, U7
    pool = kit.pool()
    header = list(reversed(kit.header(pool)))
    body = kit.csv(pool, [user("rev1"), user("rev2")], header=header).replace(b"\n", b"\r\n")
    job, lines = kit.run(pool, body)
    assert job["Status"] == "Succeeded" and job["ImportedUsers"] == 2 and len(lines) == 2


def test_header_only_and_empty_files_fail(kit):                               # U12
    pool = kit.pool()
    assert failed_with(kit, pool, kit.csv(pool, []))["CompletionMessage"] == "The CSV file holds no users."
    assert "empty" in failed_with(kit, pool, b"")["CompletionMessage"]


def test_more_than_500000_users_fail_at_start(kit):                           # fact 12
    pool = kit.pool()
    header = kit.header(pool)
    body = (",".join(header) + "\n" + "x\n" * 500_001).encode()
    job = failed_with(kit, pool, body)
    assert job["CompletionMessage"] == "The CSV file holds 500001 users; at most 500000 are allowed."


def test_more_than_100_mb_fails():                                            # fact 12
    with pytest.raises(JobFailure, match="larger than 100 MB"):
        read_rows(b"a" * (MAX_FILE_BYTES + 1), ["cognito:username"])


def test_quoted_values_stay_literal(kit):                                     # U7
    pool = kit.pool()
    job, lines = kit.run(pool, [user("quoted", email_verified='"true"')])
    assert lines == ["[FAILED] Line Number 1 - The value of email_verified is not a boolean "
                     "(write true or false)."]
    assert job["CompletionMessage"] == TOO_MANY


def test_deleted_pool_fails_the_running_job(kit):                             # fact 30
    kit.svc.configure(users_per_second=50)
    pool = kit.pool()
    job = kit.job(pool)
    kit.put(job["PreSignedUrl"], kit.csv(pool, [user(f"del{i}") for i in range(100)]))
    kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    time.sleep(0.1)
    kit.idp.delete_user_pool(UserPoolId=pool)
    record = kit.svc.service.store.get("ap-northeast-1", pool, job["JobId"])
    deadline = time.monotonic() + 5
    while record.status in ("Pending", "InProgress") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert record.status == "Failed" and record.completion_message == "The user pool was deleted."
