"""The pre-signed upload URL (fact 25): PUT only, SSE header required, signed, short-lived."""

from __future__ import annotations

import time

from tests.localcognito.conftest import user


def test_put_without_kms_header_is_refused(kit):
    pool = kit.pool()
    job = kit.job(pool)
    status, body = kit.put(job["PreSignedUrl"], b"x", headers={"Content-Type": "text/csv"})
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body
    status, body = kit.put(job["PreSignedUrl"], b"x", headers={"x-amz-server-side-encryption": "AES256"})
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body


def test_tampered_signature_and_wrong_method(kit):
    pool = kit.pool()
    job = kit.job(pool)
    url = job["PreSignedUrl"]
    status, body = kit.put(url[:-4] + "0000", b"x")
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body
    other = kit.job(pool, "other")["JobId"]
    status, _ = kit.put(url.replace(job["JobId"], other), b"x")       # a URL works for its own job only
    assert status == 403
    status, body = kit.put(url, None, method="GET")
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body


def test_expired_url(kit):
    kit.svc.configure(url_ttl_seconds=0.3)
    pool = kit.pool()
    job = kit.job(pool)
    assert "X-Amz-Expires=0" in job["PreSignedUrl"]
    time.sleep(0.4)
    status, body = kit.put(job["PreSignedUrl"], kit.csv(pool, [user("late")]))
    assert status == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in body


def test_last_upload_wins_and_upload_after_start_is_refused(kit):
    pool = kit.pool()
    job = kit.job(pool)
    assert kit.put(job["PreSignedUrl"], kit.csv(pool, [user("first")]))[0] == 200
    assert kit.put(job["PreSignedUrl"], kit.csv(pool, [user("second"), user("third")]))[0] == 200
    kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert kit.wait(pool, job["JobId"])["ImportedUsers"] == 2
    assert set(kit.users(pool)) == {"second", "third"}
    status, body = kit.put(job["PreSignedUrl"], kit.csv(pool, [user("fourth")]))
    assert status == 403 and "<Code>AccessDenied</Code>" in body
