"""Fault switches, in process and over HTTP (throttling, internal errors, failed jobs, speed)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.localcognito.conftest import ROLE, user


def outcome(call) -> str:
    try:
        call()
        return "ok"
    except ClientError as err:
        return f"{err.response['Error']['Code']}/{err.response['ResponseMetadata']['HTTPStatusCode']}"


def test_throttling_is_deterministic_and_per_operation(kit):
    pool = kit.pool()
    job = kit.job(pool)
    kit.svc.configure(throttle_rate=0.5, throttle_operations={"DescribeUserImportJob"})
    describe = lambda: kit.idp.describe_user_import_job(UserPoolId=pool, JobId=job["JobId"])  # noqa: E731
    got = [outcome(describe) for _ in range(4)]
    assert got == ["ok", "TooManyRequestsException/400"] * 2
    assert outcome(lambda: kit.idp.get_csv_header(UserPoolId=pool)) == "ok"
    kit.svc.reset_faults()
    assert [outcome(describe) for _ in range(3)] == ["ok"] * 3


def test_internal_errors_also_hit_moto_operations(kit):
    pool = kit.pool()
    kit.svc.configure(internal_error_rate=1.0, internal_error_operations=["GetCSVHeader", "ListUsers"])
    assert outcome(lambda: kit.idp.get_csv_header(UserPoolId=pool)) == "InternalErrorException/500"
    assert outcome(lambda: kit.idp.list_users(UserPoolId=pool)) == "InternalErrorException/500"
    assert outcome(lambda: kit.idp.describe_user_pool(UserPoolId=pool)) == "ok"


def test_fail_next_job(kit):
    kit.svc.configure(fail_next_jobs=1)
    pool = kit.pool()
    job, lines = kit.run(pool, [user("f1"), user("f2")])
    assert job["Status"] == "Failed"
    assert job["CompletionMessage"] == "Too many users have failed or been skipped during the import."
    assert (job["ImportedUsers"], job["FailedUsers"]) == (0, 2)
    assert lines == [f"[FAILED] Line Number {i} - An internal error occurred while importing the user."
                     for i in (1, 2)]
    again, _ = kit.run(pool, [user("f1"), user("f2")])
    assert again["Status"] == "Succeeded" and again["ImportedUsers"] == 2


def test_users_per_second_slows_the_job(kit):
    kit.svc.configure(users_per_second=100)
    pool = kit.pool()
    t0 = time.monotonic()
    job, _ = kit.run(pool, [user(f"slow{i}") for i in range(30)])
    assert job["ImportedUsers"] == 30 and time.monotonic() - t0 >= 0.25


def post(url: str, payload: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload or {}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_control_endpoints_over_http(kit):
    base = f"{kit.svc.endpoint_url}/_localcognito"
    with urllib.request.urlopen(f"{base}/health") as resp:
        assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
    status, body = post(f"{base}/config", {"throttle_rate": 1.0, "throttle_operations": ["GetCSVHeader"],
                                           "url_ttl_seconds": 60})
    assert status == 200 and body["settings"]["throttle_operations"] == ["GetCSVHeader"]
    pool = kit.pool()
    assert outcome(lambda: kit.idp.get_csv_header(UserPoolId=pool)) == "TooManyRequestsException/400"
    assert "X-Amz-Expires=59" in kit.job(pool)["PreSignedUrl"]
    assert post(f"{base}/reset-faults")[0] == 200
    assert outcome(lambda: kit.idp.get_csv_header(UserPoolId=pool)) == "ok"
    status, body = post(f"{base}/config", {"no_such_switch": 1})
    assert status == 400 and "no_such_switch" in body["error"]


def test_unknown_setting_in_process(kit):
    with pytest.raises(ValueError, match="nope"):
        kit.svc.configure(nope=1)


def test_expire_next_urls_expires_exactly_that_many_upload_urls(service, kit) -> None:
    pool = kit.pool()
    service.configure(expire_next_urls=1)
    try:
        first = kit.idp.create_user_import_job(JobName="late", UserPoolId=pool, CloudWatchLogsRoleArn=ROLE)
        second = kit.idp.create_user_import_job(JobName="ontime", UserPoolId=pool, CloudWatchLogsRoleArn=ROLE)
    finally:
        service.reset_faults()
    body = kit.csv(pool, [])
    late = urllib.request.Request(first["UserImportJob"]["PreSignedUrl"], data=body, method="PUT",
                                  headers={"x-amz-server-side-encryption": "aws:kms"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(late)
    assert err.value.code == 403 and b"Request has expired" in err.value.read()
    ontime = urllib.request.Request(second["UserImportJob"]["PreSignedUrl"], data=body, method="PUT",
                                    headers={"x-amz-server-side-encryption": "aws:kms"})
    assert urllib.request.urlopen(ontime).status == 200


@pytest.mark.parametrize("op", ["ListUsers", "AdminGetUser", "DescribeUserImportJob", "GetCSVHeader",
                                "CreateUserPool", "DescribeUserPool"])
@pytest.mark.parametrize("body", [b"[]", b'"x"', b"{not json", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_refused_not_a_500(kit, op: str, body: bytes) -> None:
    request = urllib.request.Request(kit.svc.endpoint_url, data=body, method="POST", headers={
        "X-Amz-Target": f"AWSCognitoIdentityProviderService.{op}",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/cognito-idp/aws4_request"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert err.value.code == 400
    assert json.loads(err.value.read())["__type"] == "SerializationException"
