"""Settings: the local target is the default, AWS needs its facts, and every mistake is reported."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import DEFAULT_LOCAL_PORT, load_settings


def test_nothing_configured_means_local_target_and_the_demo_database() -> None:
    settings = load_settings({})
    assert settings.target.kind == "local" and not settings.target.is_aws
    assert settings.target.local_port == DEFAULT_LOCAL_PORT
    assert settings.source_url == f"sqlite:///{settings.demo_db}"


def test_empty_directory_variables_are_unset() -> None:
    # Path("") is the working directory: the plan would write its tenants and ledger there, chmod 0700
    default = load_settings({})
    settings = load_settings({"MIGRATE_RUNS_DIR": "", "MIGRATE_MAPPINGS_DIR": "", "MIGRATE_SQL_DIR": ""})
    assert (settings.runs_dir, settings.mappings_dir, settings.sql_dir) == \
        (default.runs_dir, default.mappings_dir, default.sql_dir)
    assert settings.source_url == default.source_url


def test_the_source_url_and_directories_are_read_without_blanks(tmp_path) -> None:
    # " postgresql://..." failed with SQLAlchemy's "Could not parse SQLAlchemy URL", an env file's \r made the
    # database "legacy\r" that does not exist, and " /srv/runs" wrote the runs into a directory " " here
    url = "postgresql+psycopg2://app@db/legacy"
    settings = load_settings({"LEGACY_DB_URL": f" {url}\r\n", "MIGRATE_RUNS_DIR": f" {tmp_path}/runs\r",
                              "MIGRATE_MAPPINGS_DIR": f"{tmp_path}/m ", "MIGRATE_SQL_DIR": "\t"})
    assert settings.source_url == url
    assert (settings.runs_dir, settings.mappings_dir) == (tmp_path / "runs", tmp_path / "m")
    assert settings.sql_dir == load_settings({}).sql_dir
    assert load_settings({"LEGACY_DB_URL": "  "}).source_url == load_settings({}).source_url


def test_aws_credentials_in_the_environment_do_not_switch_the_target() -> None:
    settings = load_settings({"AWS_ACCESS_KEY_ID": "AKIA...", "AWS_REGION": "eu-west-1",
                              "COGNITO_USER_POOL_ID": "eu-west-1_abc"})
    assert settings.target.kind == "local"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"COGNITO_TARGET": "aws", "COGNITO_ENDPOINT_URL": "http://127.0.0.1:1",
                       "COGNITO_LIST_USERS_RPS": "fast", "LOCAL_COGNITO_PORT": "99999"})
    problems = err.value.problems
    assert any("needs a region" in p for p in problems)
    assert any("COGNITO_LOGS_ROLE_ARN" in p for p in problems)
    assert any("COGNITO_ENDPOINT_URL is for the local service" in p for p in problems)
    assert any(p.startswith("COGNITO_LIST_USERS_RPS='fast'") for p in problems)
    assert any(p.startswith("LOCAL_COGNITO_PORT='99999'") for p in problems)
    assert len(problems) == 5


@pytest.mark.parametrize("role", ["Cognito-UserImport-Role", "arn:aws:iam::123456789012:user/bob",
                                  "arn:aws:iam::acme:role/x", "arn:aws:iam::123456789012:role/a b"])
def test_a_logs_role_that_is_not_a_role_arn_is_named_before_any_job(role: str) -> None:
    """CreateUserImportJob refuses a CloudWatchLogsRoleArn outside its pattern (fact 44) at the first job,
    after the whole plan; the role's name alone, a user's ARN or a typo is named at once."""
    with pytest.raises(ConfigError) as err:
        load_settings({"COGNITO_TARGET": "aws", "COGNITO_REGION": "eu-west-1", "COGNITO_LOGS_ROLE_ARN": role})
    assert err.value.problems == [
        f"COGNITO_LOGS_ROLE_ARN={role!r} is not an IAM role's ARN: write the whole ARN, "
        "arn:aws:iam::<account id>:role/<path and name> (IAM shows it on the role's page)"]
    for good in ("arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role",
                 "arn:aws-cn:iam::123456789012:role/import.logs@acme"):
        settings = load_settings({"COGNITO_TARGET": "aws", "COGNITO_REGION": "eu-west-1",
                                  "COGNITO_LOGS_ROLE_ARN": good})
        assert settings.target.logs_role_arn == good


def test_a_pool_id_that_is_not_one_is_named_on_aws() -> None:
    aws = {"COGNITO_TARGET": "aws", "COGNITO_REGION": "eu-west-1", "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::1:role/r"}
    with pytest.raises(ConfigError) as err:
        load_settings({**aws, "COGNITO_USER_POOL_ID": "acme-users"})
    assert err.value.problems == ["COGNITO_USER_POOL_ID='acme-users' is not a user pool id; it looks like "
                                  "ap-northeast-1_AbCdEf123 (the pool's page in the Cognito console shows it)"]
    assert load_settings({**aws, "COGNITO_USER_POOL_ID": "eu-west-1_AbC123"}).target.user_pool_id == "eu-west-1_AbC123"


def test_bad_numbers_name_the_variable_and_the_fix() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"COGNITO_LIST_USERS_RPS": "fast", "LOCAL_COGNITO_PORT": "99999"})
    assert err.value.problems == [
        "COGNITO_LIST_USERS_RPS='fast': write a number of at least 0 (0 means no limit)",
        "LOCAL_COGNITO_PORT='99999': write a port number from 1 to 65535",
    ]
    assert load_settings({"LOCAL_COGNITO_PORT": "9400"}).target.local_port == 9400
    with pytest.raises(ConfigError) as err:       # not cut to 9229
        load_settings({"LOCAL_COGNITO_PORT": "9229.5"})
    assert err.value.problems == ["LOCAL_COGNITO_PORT='9229.5': write a port number from 1 to 65535"]
    assert load_settings({"LOCAL_COGNITO_PORT": "9400.0"}).target.local_port == 9400


def test_the_final_checks_listing_is_paced_on_aws_only() -> None:
    """ListUsers shares the account's UserList quota (30 a second, not adjustable) with the application:
    AWS gets two thirds of it unless COGNITO_LIST_USERS_RPS says otherwise; the local service no pacing."""
    aws = {"COGNITO_TARGET": "aws", "COGNITO_REGION": "eu-west-1", "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::1:role/r"}
    assert load_settings(aws).target.list_users_pages_per_second == 20.0
    assert load_settings({**aws, "COGNITO_LIST_USERS_RPS": "4"}).target.list_users_pages_per_second == 4.0
    assert load_settings({}).target.list_users_pages_per_second == 0.0


def test_an_endpoint_url_that_is_no_url_or_real_aws_is_named_for_the_local_target() -> None:
    """COGNITO_ENDPOINT_URL is the local service's: without a scheme botocore raised its ValueError (a
    traceback), and an AWS endpoint would have been called as the local service, with dummy credentials."""
    with pytest.raises(ConfigError) as err:
        load_settings({"COGNITO_ENDPOINT_URL": "127.0.0.1:9229"})
    assert err.value.problems == ["COGNITO_ENDPOINT_URL='127.0.0.1:9229' is not a URL: write the local service's, "
                                  "such as http://127.0.0.1:9229, or unset it to have the service started"]
    for aws in ("https://cognito-idp.eu-west-1.amazonaws.com", "https://cognito-idp.cn-north-1.amazonaws.com.cn",
                "https://cognito-idp-fips.us-east-1.amazonaws.com/"):
        with pytest.raises(ConfigError) as err:
            load_settings({"COGNITO_ENDPOINT_URL": aws})
        assert err.value.problems == [f"COGNITO_ENDPOINT_URL={aws!r} is real AWS, not the local service: for AWS set "
                                      "COGNITO_TARGET=aws (with COGNITO_REGION) and unset COGNITO_ENDPOINT_URL"]
    assert load_settings({"COGNITO_ENDPOINT_URL": " http://127.0.0.1:9400 "}).target.endpoint_url == \
        "http://127.0.0.1:9400"


def test_loopback_urls() -> None:
    from pipeline.settings import is_loopback_url

    for url in ("http://127.0.0.1:9229", "http://localhost:1", "http://[::1]:9229", "http://127.0.0.2"):
        assert is_loopback_url(url)
    for url in ("http://10.0.0.5:9229", "http://cognito:9229", "https://evil.example.com", "http://127.0.0.1.nip.io"):
        assert not is_loopback_url(url)


def test_a_url_is_shown_without_its_user_and_password() -> None:
    from pipeline.settings import shown_url

    assert shown_url("http://bob:s3cret@10.0.0.5:9229/x?y=1") == "http://***@10.0.0.5:9229/x?y=1"
    assert shown_url("http://b%40b:p@ss@host") == "http://***@host"       # the last @ ends the user part
    assert shown_url("http://127.0.0.1:9229") == "http://127.0.0.1:9229"


def test_the_region_is_read_without_blanks_and_a_malformed_one_is_named() -> None:
    """botocore refuses a region with blanks or other characters with a traceback (InvalidRegionError), on the
    local target too when AWS_REGION holds it; a trailing blank also made the pool-region check say
    'pool eu-west-1_... is in eu-west-1, and COGNITO_REGION is eu-west-1 '."""
    aws = {"COGNITO_TARGET": "aws", "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::1:role/r"}
    assert load_settings({**aws, "COGNITO_REGION": " eu-west-1 "}).target.region == "eu-west-1"
    assert load_settings({**aws, "COGNITO_REGION": " ", "AWS_REGION": "eu-west-2"}).target.region == "eu-west-2"
    with pytest.raises(ConfigError) as err:
        load_settings({**aws, "COGNITO_REGION": "eu_west_1"})
    assert err.value.problems == ["COGNITO_REGION='eu_west_1' is not an AWS region: write one such as ap-northeast-1 "
                                  "(a user pool id starts with its region)"]
    with pytest.raises(ConfigError) as err:
        load_settings({"AWS_REGION": "eu west"})
    assert err.value.problems == ["AWS_REGION='eu west' is not an AWS region: write one such as ap-northeast-1 "
                                  "(a user pool id starts with its region)"]
