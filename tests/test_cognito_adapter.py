"""The Cognito adapter: isolation of the local target, our retry policy, errors, upload and logs."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from pipeline.cognito import (
    CognitoTarget,
    PreconditionNotMet,
    ResourceNotFound,
    RetryPolicy,
    UrlExpired,
    mask_url,
)
from pipeline.errors import ConfigError, LoadError, TransientLoadError
from pipeline.settings import TargetSettings
from tests import loadfixtures as fx
from tests.loadfixtures import make_chunks, make_target, new_pool

service = fx.service  # fixture (no conftest.py: see loadfixtures)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def target(service: Any) -> CognitoTarget:
    service.reset_faults()
    service.configure(url_ttl_seconds=900)
    yield make_target(service)
    service.reset_faults()
    service.configure(url_ttl_seconds=900)


def test_local_target_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://cognito-idp.us-east-1.amazonaws.com")
    target = CognitoTarget.from_settings(TargetSettings(), endpoint_url="http://127.0.0.1:1")
    for client in (target._idp, target._logs):
        assert client.meta.endpoint_url == "http://127.0.0.1:1"
        creds = client._request_signer._credentials
        assert (creds.access_key, creds.secret_key) == ("testing", "testing")
        assert client.meta.config.retries["total_max_attempts"] == 1  # the retry policy is ours
    assert target.account_key == "local:http://127.0.0.1:1:us-east-1"


def test_configuration_mistakes() -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        CognitoTarget.from_settings(TargetSettings())
    with pytest.raises(ConfigError, match="local service"):
        CognitoTarget.from_settings(TargetSettings(kind="aws"), endpoint_url="http://127.0.0.1:1")
    aws = CognitoTarget.from_settings(TargetSettings(kind="aws", region="eu-west-1"))
    assert aws._idp.meta.region_name == "eu-west-1" and "amazonaws.com" in aws._idp.meta.endpoint_url
    with pytest.raises(ConfigError, match="only created on the local service"):
        aws.find_or_create_local_pool({"PoolName": "x"})


def test_pool_is_found_or_created_once(target: CognitoTarget) -> None:
    first = target.find_or_create_local_pool(
        {"PoolName": "adapter-pool", "AutoVerifiedAttributes": ["email"]}
    )
    assert target.find_or_create_local_pool({"PoolName": "adapter-pool"}) == first
    assert target.get_csv_header(first)[-1] == "cognito:username"
    assert target.describe_user_pool(first)["Name"] == "adapter-pool"


def test_pool_parameters_botocore_refuses_name_their_place_in_the_mapping(target: CognitoTarget) -> None:
    # a misspelt nested CreateUserPool parameter ended the report in a ParamValidationError traceback
    where = "mappings/tenants/acme-jp.yaml: pool.local (line 9)"
    with pytest.raises(ConfigError) as info:
        target.find_or_create_local_pool(
            {"PoolName": "adapter-bad-pool", "Policies": {"PasswordPolicy": {"MinLenght": 8}}}, where)
    message = str(info.value)
    assert message.startswith(where) and '"MinLenght", must be one of: MinimumLength' in message
    assert "CreateUserPool API reference" in message


def test_throttling_is_retried_with_backoff(service: Any, target: CognitoTarget) -> None:
    pool_id, _ = new_pool(target)
    sleeps = Sleeps()
    target.retry = RetryPolicy(
        max_attempts=4, base_seconds=0.5, cap_seconds=1.0, sleep=sleeps, jitter=lambda: 1.0
    )
    service.configure(throttle_rate=0.5, throttle_operations={"GetCSVHeader"})
    target.calls.clear()
    for _ in range(4):
        assert target.get_csv_header(pool_id)
    # the service throttles every second call: ok, (throttled, ok) x 3
    assert target.calls["GetCSVHeader"] == 7 and sleeps.calls == [0.5, 0.5, 0.5]
    service.configure(throttle_rate=1.0, throttle_operations={"ListUserImportJobs"})
    sleeps.calls.clear()
    with pytest.raises(TransientLoadError, match="ListUserImportJobs still failing after 4 attempts"):
        target.list_import_jobs(pool_id)
    assert sleeps.calls == [0.5, 1.0, 1.0]  # capped exponential, full jitter = 1
    service.configure(throttle_rate=0.0, internal_error_rate=0.5, internal_error_operations={"GetCSVHeader"})
    target.calls.clear()
    assert target.get_csv_header(pool_id) and target.get_csv_header(pool_id)
    assert target.calls["GetCSVHeader"] == 3  # the 500 was retried


def test_connection_errors_are_retried_then_wrapped() -> None:
    sleeps = Sleeps()
    target = CognitoTarget.from_settings(
        TargetSettings(),
        endpoint_url="http://127.0.0.1:9",
        retry=RetryPolicy(max_attempts=3, sleep=sleeps, jitter=lambda: 0.0),
    )
    with pytest.raises(TransientLoadError) as caught:
        target.get_csv_header("us-east-1_x")
    assert len(sleeps.calls) == 2
    # the endpoint is named, and what to check: not "throttling", which it is not
    assert "GetCSVHeader: cannot reach http://127.0.0.1:9 after 3 attempts" in str(caught.value)
    assert "make serve-cognito" in str(caught.value) and "throttling" not in str(caught.value)


def test_a_password_in_the_endpoint_url_is_not_shown() -> None:
    target = CognitoTarget.from_settings(TargetSettings(), endpoint_url="http://bob:s3cret@127.0.0.1:9",
                                         retry=RetryPolicy(max_attempts=1, sleep=Sleeps(), jitter=lambda: 0.0))
    with pytest.raises(TransientLoadError) as caught:
        target.get_csv_header("us-east-1_x")
    assert "cannot reach http://***@127.0.0.1:9 after 1 attempts" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "bob" not in str(caught.value)


def test_refusals_are_not_retried(target: CognitoTarget, tmp_path: Path) -> None:
    pool_id, header = new_pool(target)
    with pytest.raises(ResourceNotFound) as err:
        target.describe_import_job(pool_id, "import-doesnotexist")
    assert err.value.operation == "DescribeUserImportJob" and target.calls["DescribeUserImportJob"] == 1
    job = target.create_import_job(pool_id, "adapter-test", target.logs_role_arn)
    with pytest.raises(PreconditionNotMet, match="No csv file was uploaded"):
        target.start_import_job(pool_id, job["JobId"])
    assert isinstance(err.value, LoadError) and target.calls["StartUserImportJob"] == 1
    assert target.admin_get_user(pool_id, "nobody") is None


def test_upload_start_and_log(target: CognitoTarget, tmp_path: Path) -> None:
    pool_id, header = new_pool(target)
    chunk = make_chunks(tmp_path, header, 3, chunk_rows=10)[0]
    job = target.create_import_job(pool_id, "adapter-upload", target.logs_role_arn)
    target.upload(job["PreSignedUrl"], chunk.csv_path)
    target.start_import_job(pool_id, job["JobId"])
    import time

    for _ in range(100):
        final = target.describe_import_job(pool_id, job["JobId"])
        if final["Status"] == "Succeeded":
            break
        time.sleep(0.05)
    assert final["ImportedUsers"] == 3
    name = target.describe_user_pool(pool_id)["Name"]
    lines = target.job_log_events(pool_id, name, job["JobId"], "adapter-upload")
    assert lines == [f"[SUCCEEDED] Line Number {n} - The import succeeded." for n in (1, 2, 3)]
    assert target.job_log_events(pool_id, name, "import-none", "x") is None
    users = list(target.list_users(pool_id))
    assert sorted(u["Username"] for u in users) == ["user0", "user1", "user2"]
    user = target.admin_get_user(pool_id, "user1")
    assert user is not None and user["UserStatus"] == "RESET_REQUIRED"
    assert {a["Name"] for a in user["Attributes"]} >= {"sub", "email", "custom:tenant_id"}


def test_expired_url_is_recognised_and_masked(service: Any, target: CognitoTarget, tmp_path: Path) -> None:
    pool_id, header = new_pool(target)
    chunk = make_chunks(tmp_path, header, 1, chunk_rows=10)[0]
    service.configure(url_ttl_seconds=1)
    job = target.create_import_job(pool_id, "adapter-expired", target.logs_role_arn)
    import time

    time.sleep(2.1)
    with pytest.raises(UrlExpired) as err:
        target.upload(job["PreSignedUrl"], chunk.csv_path)
    signature = urllib.parse.parse_qs(urllib.parse.urlparse(job["PreSignedUrl"]).query)["X-Amz-Signature"][0]
    assert signature not in str(err.value) and "X-Amz-Signature=***" in str(err.value)


def test_mask_url() -> None:
    url = (
        "https://bucket.s3.amazonaws.com/1/p/import-x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F1"
        "&X-Amz-Security-Token=tok&X-Amz-Signature=abc123&other=1"
    )
    masked = mask_url(url)
    assert "abc123" not in masked and "AK%2F1" not in masked and "tok" not in masked
    assert masked.endswith("X-Amz-Signature=***&other=1")


def test_missing_aws_credentials_are_a_configuration_message(monkeypatch) -> None:
    """On AWS with no credentials anywhere, the first call explains what to set (no traceback, no call)."""
    from pipeline.errors import ConfigError
    from pipeline.settings import TargetSettings

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    target = CognitoTarget.from_settings(TargetSettings(kind="aws", region="eu-west-1"))
    with pytest.raises(ConfigError) as err:
        target.get_csv_header("eu-west-1_abc")
    assert "AWS_ACCESS_KEY_ID" in str(err.value) and "GetCSVHeader" in str(err.value)


def _pool_with_users(target: CognitoTarget, tmp_path: Path, n: int) -> str:
    from pipeline.ledger import Ledger
    from pipeline.load import run_load
    from tests.loadfixtures import fast_policy

    pool_id, header = new_pool(target)
    with Ledger.open(tmp_path / "ledger.sqlite") as led:
        run_load(target, led, "acme", pool_id, make_chunks(tmp_path / "c", header, n, chunk_rows=n), fast_policy())
    return pool_id


def test_sharded_listing_returns_every_user_exactly_once(target: CognitoTarget, tmp_path: Path) -> None:
    pool_id = _pool_with_users(target, tmp_path, 150)
    one_by_one = list(target.list_users(pool_id))
    pages = list(target.list_user_pages(pool_id, listings=3))
    assert all(0 < len(p) <= 60 for p in pages)
    sharded = [u for p in pages for u in p]
    assert len(sharded) == len(one_by_one) == 150
    assert sorted(u["Username"] for u in sharded) == sorted(u["Username"] for u in one_by_one)
    by_name = {u["Username"]: u for u in one_by_one}
    assert all(u == by_name[u["Username"]] for u in sharded)
    assert target.calls["ListUsers"] >= 16 + 3   # one listing per sub shard, plus the unsharded one


def test_listing_body_read_like_botocore(service: Any, target: CognitoTarget, tmp_path: Path) -> None:
    """Our ListUsers reading gives botocore's dict: same keys and values, dates the same instants."""
    import boto3

    pool_id = _pool_with_users(target, tmp_path, 3)
    plain = boto3.client("cognito-idp", endpoint_url=service.endpoint_url, region_name=target.region,
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    theirs = sorted(plain.list_users(UserPoolId=pool_id)["Users"], key=lambda u: u["Username"])
    ours = sorted(target.list_users(pool_id), key=lambda u: u["Username"])
    assert ours == theirs   # aware datetimes compare by instant
    assert all(u["UserCreateDate"].tzinfo is not None for u in ours)


def test_concurrent_listings_share_one_page_rate(target: CognitoTarget, tmp_path: Path) -> None:
    import time

    pool_id = _pool_with_users(target, tmp_path, 20)
    before = target.calls.get("ListUsers", 0)
    t0 = time.monotonic()
    assert sum(len(p) for p in target.list_user_pages(pool_id, listings=4, pages_per_second=20)) == 20
    pages = target.calls["ListUsers"] - before
    assert pages >= 16 and time.monotonic() - t0 >= (pages - 1) / 20 - 0.01


def test_pacer_spaces_calls_across_threads() -> None:
    import threading

    from pipeline.fanout import Pacer

    slept: list[float] = []
    pacer = Pacer(4, sleep=slept.append, clock=lambda: 100.0)
    threads = [threading.Thread(target=pacer.wait) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(slept) == [0.25, 0.5, 0.75, 1.0]   # the first call goes at once
    Pacer(0, sleep=slept.append).wait()
    assert len(slept) == 4


def test_a_failing_listing_ends_the_sharded_listing(service: Any, target: CognitoTarget, tmp_path: Path) -> None:
    import threading

    pool_id = _pool_with_users(target, tmp_path, 5)
    target.retry = RetryPolicy(max_attempts=2, base_seconds=0.001, cap_seconds=0.001)
    service.configure(throttle_rate=1.0, throttle_operations={"ListUsers"})
    with pytest.raises(TransientLoadError, match="ListUsers"):
        list(target.list_user_pages(pool_id, listings=4))
    assert not [t for t in threading.enumerate() if t.name.startswith("fanout")]


def test_users_frame_keys_blanks_and_missing_sub() -> None:
    from datetime import UTC, datetime

    from pipeline.poolusers import users_frame

    when = datetime(2026, 1, 2, tzinfo=UTC)
    users = [
        {"Username": "u1", "UserStatus": "RESET_REQUIRED", "UserCreateDate": when,
         "Attributes": [{"Name": "sub", "Value": "s1"}, {"Name": "email", "Value": "a@x.jp"}]},
        {"Username": "u2", "UserStatus": "CONFIRMED", "UserCreateDate": 5.0, "Attributes": [{"Name": "name"}]},
        {"Username": "u1", "UserStatus": "CONFIRMED", "Attributes": []},            # a repeat: first kept
        {"_key": "Named", "Username": "x", "Attributes": [{"Name": "sub", "Value": "s3"}]},
    ]
    frame = users_frame(users, ["email", "name"])
    assert list(frame.index) == ["u1", "u2", "Named"]
    assert list(frame.columns) == ["sub", "status", "created", "email", "name"]
    assert frame.loc["u1", "email"] == "a@x.jp" and frame.loc["u2", "email"] == "" and frame.loc["u2", "name"] == ""
    assert frame["sub"].isna().tolist() == [False, True, False]
    assert frame["created"].tolist() == [when.timestamp(), 5.0, 0.0]
    by_email = users_frame(users[:2], ["email"], key_attribute="email")
    assert list(by_email.index)[:1] == ["a@x.jp"] and len(by_email) == 2
    not_compared = users_frame(users[:2], ["name"], key_attribute="email")   # the key is not a compared column
    assert list(not_compared.index)[:1] == ["a@x.jp"] and list(not_compared.columns)[-1] == "name"
    assert users_frame([], ["email"]).empty


def test_a_pool_that_cannot_be_read_is_a_contract_error_saying_what_to_check(target: CognitoTarget) -> None:
    """A wrong pool id (or region) and an unreachable endpoint are not load failures: nothing was loaded.
    The plan stops with the pool named and what to check (exit 2), before any job."""
    from pipeline.errors import ContractError
    from pipeline.plan import read_contract

    with pytest.raises(ContractError) as wrong:
        read_contract(target, "us-east-1_doesnotexist")
    assert wrong.value.exit_code == 2 and wrong.value.phase == "contract"
    assert "The pool us-east-1_doesnotexist could not be read: GetCSVHeader refused" in str(wrong.value)
    assert "COGNITO_USER_POOL_ID" in str(wrong.value) and "COGNITO_REGION" in str(wrong.value)
    away = CognitoTarget.from_settings(TargetSettings(), endpoint_url="http://127.0.0.1:9",
                                       retry=RetryPolicy(max_attempts=2, sleep=Sleeps(), jitter=lambda: 0.0))
    with pytest.raises(ContractError, match=r"could not be read: GetCSVHeader: cannot reach http://127\.0\.0\.1:9"):
        read_contract(away, "us-east-1_x")


def test_a_jobs_completion_message_is_scrubbed(target: CognitoTarget) -> None:
    """A job's CompletionMessage reaches the ledger, the run report and the terminal: an address or phone
    number Cognito's text may quote is masked, as its API errors and log lines are."""
    from botocore.stub import Stubber

    said = "Failed on the user ann.yamada@example.com (+81 90 1234 5678)."
    job = {"JobId": "import-abc123", "JobName": "j", "UserPoolId": "us-east-1_Abc123", "Status": "Failed",
           "CompletionMessage": said}
    with Stubber(target._idp) as stub:
        stub.add_response("describe_user_import_job", {"UserImportJob": job},
                          {"UserPoolId": "us-east-1_Abc123", "JobId": "import-abc123"})
        stub.add_response("list_user_import_jobs", {"UserImportJobs": [job]},
                          {"UserPoolId": "us-east-1_Abc123", "MaxResults": 60})
        described = target.describe_import_job("us-east-1_Abc123", "import-abc123")
        (listed,) = target.list_import_jobs("us-east-1_Abc123")
    for seen in (described, listed):
        assert seen["CompletionMessage"] == "Failed on the user a***@e***.com (+81***78)."
        assert seen["Status"] == "Failed"


def test_the_local_target_uploads_only_to_its_own_service(tmp_path: Path) -> None:
    """An upload URL on another host than the local service's (a real S3 bucket, another machine) is refused
    before anything is sent: the import file holds every user's email, phone and name."""
    target = CognitoTarget.from_settings(TargetSettings(), endpoint_url="http://127.0.0.1:1",
                                         retry=RetryPolicy(max_attempts=2, sleep=lambda s: None))
    sent: list[str] = []

    def open_(request: Any, timeout: float = 0) -> Any:
        sent.append(request.full_url)
        raise ConnectionError("no network in this test")

    target._opener.open = open_   # type: ignore[method-assign]
    csv = tmp_path / "chunk-00001.csv"
    csv.write_text("cognito:username\nuser0\n")
    for url in ("https://cognito-import.s3.amazonaws.com/1/p/import-x?X-Amz-Signature=secret",
                "http://10.0.0.5:1/upload/import-x", "http://127.0.0.1:2/upload/import-x"):
        with pytest.raises(LoadError, match="upload URL on another host") as err:
            target.upload(url, csv)
        assert "secret" not in str(err.value)
    assert sent == []
    with pytest.raises(TransientLoadError):     # its own host: tried (and unreachable here)
        target.upload("http://127.0.0.1:1/upload/import-x", csv)
    assert sent == ["http://127.0.0.1:1/upload/import-x"] * 2


@pytest.mark.parametrize("case", ["missing profile", "half the keys", "config does not parse",
                                  "credential_process fails", "sso not logged in", "source profile without keys"])
def test_a_broken_aws_credential_chain_is_a_configuration_message(case: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each was botocore's traceback, from the session (a missing profile, half the keys, a broken config file,
    a failing credential_process) or from the first call (an SSO profile whose login is not there)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COGNITO_IDP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    config = tmp_path / "config"
    config.write_text("[profile proc]\ncredential_process = /bin/false\n"
                      "[profile sso]\nsso_start_url = https://x.awsapps.com/start\nsso_region = eu-west-1\n"
                      "sso_account_id = 123456789012\nsso_role_name = r\n"
                      "[profile assume]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = nokeys\n"
                      "[profile nokeys]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    env = {"missing profile": {"AWS_PROFILE": "nope"}, "half the keys": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
           "credential_process fails": {"AWS_PROFILE": "proc"}, "sso not logged in": {"AWS_PROFILE": "sso"},
           "source profile without keys": {"AWS_PROFILE": "assume"}}.get(case, {})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if case == "config does not parse":
        config.write_text("[profile broken\nregion = eu-west-1\n")
    with pytest.raises(ConfigError) as err:
        target = CognitoTarget.from_settings(TargetSettings(kind="aws", region="eu-west-1"),
                                             retry=RetryPolicy(max_attempts=1))
        target.get_csv_header("eu-west-1_abc")
    assert "AWS_PROFILE" in str(err.value) and "AWS_ACCESS_KEY_ID" in str(err.value)
