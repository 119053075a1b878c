"""Job lifecycle, state errors, parameters, listing and quotas (facts 22-28, 31, 38, 42-44)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from tests.localcognito.conftest import ROLE, user


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_header_has_standard_then_custom_then_trailer(kit):
    pool = kit.pool(Schema=[{"Name": "tenant_id", "AttributeDataType": "String"},
                            {"Name": "role", "AttributeDataType": "String"}])
    header = kit.header(pool)
    assert header[:3] == ["name", "given_name", "family_name"]
    assert header[-5:] == ["updated_at", "custom:tenant_id", "custom:role", "cognito:mfa_enabled",
                           "cognito:username"]
    assert "sub" not in header and "identities" not in header and len(header) == 23
    got = kit.idp.get_csv_header(UserPoolId=pool)
    assert got["UserPoolId"] == pool
    # moto alone would keep only the custom entries; DescribeUserPool shows the completed schema
    schema = kit.idp.describe_user_pool(UserPoolId=pool)["UserPool"]["SchemaAttributes"]
    assert [a["Name"] for a in schema][:2] == ["sub", "name"] and schema[-1]["Name"] == "custom:role"


def test_custom_attribute_limits_of_create_user_pool(kit):                       # fact 13
    """moto takes a custom attribute name over 20 characters and more than 50 attributes; Cognito does not."""
    with pytest.raises(ClientError) as err:
        kit.raw.create_user_pool(PoolName="p", Schema=[{"Name": "x" * 21, "AttributeDataType": "String"}])
    assert code(err) == ("InvalidParameterException", f"1 validation error detected: Value '{'x' * 21}' at "
                         "'schema.1.member.name' failed to satisfy constraint: Member must have length less "
                         "than or equal to 20", 400)
    with pytest.raises(ClientError) as err:
        kit.raw.create_user_pool(PoolName="p", Schema=[{"Name": f"a{i}", "AttributeDataType": "String"}
                                                       for i in range(51)])
    assert code(err)[0] == "InvalidParameterException" and "less than or equal to 50" in code(err)[1]
    pool = kit.pool(Schema=[{"Name": "x" * 20, "AttributeDataType": "String"},
                            {"Name": "email", "AttributeDataType": "String", "Required": True},
                            *({"Name": f"a{i}", "AttributeDataType": "String"} for i in range(48))])
    assert kit.header(pool)[19] == "custom:" + "x" * 20


def test_created_job_shape(kit):
    pool = kit.pool()
    job = kit.job(pool, "my job.v1@x")
    assert job["Status"] == "Created" and job["JobName"] == "my job.v1@x"
    assert job["UserPoolId"] == pool and job["CloudWatchLogsRoleArn"] == ROLE
    assert (job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"]) == (0, 0, 0)
    assert "StartDate" not in job and "CompletionDate" not in job and "CompletionMessage" not in job
    url = job["PreSignedUrl"]
    assert url.startswith(f"{kit.svc.endpoint_url}/aws-cognito-idp-user-import-local/123456789012/{pool}/"
                          f"{job['JobId']}?")
    assert "X-Amz-Expires=899" in url and "X-Amz-SignedHeaders=host%3Bx-amz-server-side-encryption" in url
    raw = kit.idp.describe_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert raw["UserImportJob"]["CreationDate"] == job["CreationDate"]


def test_full_run_statuses_and_dates(kit):
    pool = kit.pool()
    job = kit.job(pool)
    kit.put(job["PreSignedUrl"], kit.csv(pool, [user("a1"), user("a2")]))
    started = kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])["UserImportJob"]
    assert started["Status"] == "Pending" and "StartDate" in started
    done = kit.wait(pool, job["JobId"])
    assert done["Status"] == "Succeeded" and done["CompletionMessage"] == "Import Job Completed Successfully."
    assert done["CreationDate"] <= done["StartDate"] <= done["CompletionDate"]
    with pytest.raises(ClientError) as err:                                    # U8: not Created
        kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert code(err)[0] == "PreconditionNotMetException"
    with pytest.raises(ClientError) as err:
        kit.idp.stop_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert code(err)[0] == "PreconditionNotMetException"


def test_start_without_upload(kit):
    pool = kit.pool()
    job = kit.job(pool)
    with pytest.raises(ClientError) as err:
        kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert code(err) == ("PreconditionNotMetException", f"No csv file was uploaded for {job['JobId']}", 400)


def test_start_in_pool_without_auto_verification(kit):
    pool = kit.pool(AutoVerifiedAttributes=[])
    job = kit.job(pool)
    kit.put(job["PreSignedUrl"], kit.csv(pool, [user("x")]))
    with pytest.raises(ClientError) as err:
        kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert code(err)[0] == "PreconditionNotMetException"


def test_one_active_job_per_account_and_stop(kit):
    kit.svc.configure(users_per_second=20)
    pool, other = kit.pool(), kit.pool()
    first, second = kit.job(pool, "first"), kit.job(other, "second")
    kit.put(first["PreSignedUrl"], kit.csv(pool, [user(f"s{i}") for i in range(200)]))
    kit.put(second["PreSignedUrl"], kit.csv(other, [user("t1")]))
    kit.idp.start_user_import_job(UserPoolId=pool, JobId=first["JobId"])
    with pytest.raises(ClientError) as err:
        kit.idp.start_user_import_job(UserPoolId=other, JobId=second["JobId"])
    assert code(err)[0] == "PreconditionNotMetException" and first["JobId"] in code(err)[1]
    deadline = time.monotonic() + 5
    while kit.idp.describe_user_import_job(UserPoolId=pool, JobId=first["JobId"])[
            "UserImportJob"]["ImportedUsers"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    running = kit.idp.describe_user_import_job(UserPoolId=pool, JobId=first["JobId"])["UserImportJob"]
    assert running["Status"] == "InProgress" and 0 < running["ImportedUsers"] < 200   # counters move
    stopped = kit.idp.stop_user_import_job(UserPoolId=pool, JobId=first["JobId"])["UserImportJob"]
    assert stopped["Status"] == "Stopped" and "CompletionDate" in stopped
    assert stopped["CompletionMessage"] == "The Import Job was stopped by the developer."
    time.sleep(0.2)
    after = kit.idp.describe_user_import_job(UserPoolId=pool, JobId=first["JobId"])["UserImportJob"]
    assert after["Status"] == "Stopped" and after["ImportedUsers"] < 200
    assert len(kit.users(pool)) == after["ImportedUsers"]
    kit.svc.configure(users_per_second=None)
    kit.idp.start_user_import_job(UserPoolId=other, JobId=second["JobId"])     # now free
    assert kit.wait(other, second["JobId"])["Status"] == "Succeeded"
    with pytest.raises(ClientError) as err:                                     # stopped: never again
        kit.idp.start_user_import_job(UserPoolId=pool, JobId=first["JobId"])
    assert code(err)[0] == "PreconditionNotMetException"


def test_stop_of_created_job_is_refused(kit):
    pool = kit.pool()
    job = kit.job(pool)
    with pytest.raises(ClientError) as err:
        kit.idp.stop_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert code(err)[0] == "PreconditionNotMetException"


def test_unstarted_job_expires(kit):
    kit.svc.configure(job_ttl_seconds=0.3)
    pool = kit.pool()
    job = kit.job(pool)
    kit.put(job["PreSignedUrl"], kit.csv(pool, [user("e1")]))
    time.sleep(0.4)
    expired = kit.idp.describe_user_import_job(UserPoolId=pool, JobId=job["JobId"])["UserImportJob"]
    assert expired["Status"] == "Expired"
    assert expired["CompletionMessage"] == "The user import job has expired."
    assert expired["CompletionDate"] >= expired["CreationDate"]
    with pytest.raises(ClientError) as err:
        kit.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
    assert code(err)[0] == "PreconditionNotMetException"


def test_unknown_pool_and_job(kit):
    pool = kit.pool()
    with pytest.raises(ClientError) as err:
        kit.idp.get_csv_header(UserPoolId="ap-northeast-1_nothere")
    assert code(err)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        kit.idp.create_user_import_job(JobName="j", UserPoolId="ap-northeast-1_nothere",
                                       CloudWatchLogsRoleArn=ROLE)
    assert code(err)[0] == "ResourceNotFoundException"
    idp = kit.idp
    for call in (idp.describe_user_import_job, idp.start_user_import_job, idp.stop_user_import_job):
        with pytest.raises(ClientError) as err:
            call(UserPoolId=pool, JobId="import-doesnotexist")
        assert code(err)[0] == "ResourceNotFoundException"


@pytest.mark.parametrize("kwargs", [
    {"JobName": "bad/name"},
    {"JobName": "x" * 129},
    {"CloudWatchLogsRoleArn": "not-an-arn-at-all-really"},
    {"CloudWatchLogsRoleArn": "arn:aws:iam::acct:role/x"},
])
def test_create_parameter_patterns(kit, kwargs):
    pool = kit.pool()
    params = {"JobName": "ok", "UserPoolId": pool, "CloudWatchLogsRoleArn": ROLE, **kwargs}
    with pytest.raises(ClientError) as err:
        kit.raw.create_user_import_job(**params)
    assert code(err)[0] == "InvalidParameterException"


def test_pool_and_job_id_patterns(kit):
    pool = kit.pool()
    with pytest.raises(ClientError) as err:
        kit.idp.get_csv_header(UserPoolId="no-underscore")
    assert code(err)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        kit.idp.describe_user_import_job(UserPoolId=pool, JobId="export-abc")
    assert code(err)[0] == "InvalidParameterException"


def test_password_hash_import_is_refused(kit):                                  # U13
    pool = kit.pool()
    with pytest.raises(ClientError) as err:
        kit.idp.create_user_import_job(JobName="j", UserPoolId=pool, CloudWatchLogsRoleArn=ROLE,
                                       PasswordHashingAlgorithm="BCRYPT")
    assert code(err)[0] == "InvalidParameterException"


def test_missing_parameters(kit):
    with pytest.raises(ClientError) as err:
        kit.raw.list_user_import_jobs(UserPoolId=kit.pool())
    assert code(err) == ("InvalidParameterException", "1 validation error detected: Value null at 'maxResults' "
                         "failed to satisfy constraint: Member must not be null", 400)
    with pytest.raises(ClientError) as err:
        kit.raw.create_user_import_job(JobName="j", UserPoolId=kit.pool())
    assert code(err)[0] == "InvalidParameterException" and "cloudWatchLogsRoleArn" in code(err)[1]


def test_list_newest_first_with_pagination(kit):
    pool = kit.pool()
    ids = [kit.job(pool, f"j{i}")["JobId"] for i in range(5)]
    page = kit.idp.list_user_import_jobs(UserPoolId=pool, MaxResults=2)
    assert [j["JobId"] for j in page["UserImportJobs"]] == ids[::-1][:2]
    token = page["PaginationToken"]
    p_id, j_id, millis = token.split("#")
    assert p_id == pool and j_id == ids[2] and millis.isdigit()
    rest = kit.idp.list_user_import_jobs(UserPoolId=pool, MaxResults=60, PaginationToken=token)
    assert [j["JobId"] for j in rest["UserImportJobs"]] == ids[::-1][2:] and "PaginationToken" not in rest
    for bad in (0, 61):
        with pytest.raises(ClientError) as err:
            kit.raw.list_user_import_jobs(UserPoolId=pool, MaxResults=bad)
        assert code(err)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        kit.idp.list_user_import_jobs(UserPoolId=pool, MaxResults=5, PaginationToken="garbage")
    assert code(err)[0] == "InvalidParameterException"


def test_jobs_per_pool_quota(kit):
    kit.svc.configure(max_jobs_per_pool=3)
    pool = kit.pool()
    for i in range(3):
        kit.job(pool, f"q{i}")
    with pytest.raises(ClientError) as err:
        kit.job(pool, "one-too-many")
    assert code(err)[0] == "LimitExceededException"
    assert kit.job(kit.pool(), "other-pool")["Status"] == "Created"


def test_quota_default_is_1000(service):
    assert service.config.max_jobs_per_pool == 1000
