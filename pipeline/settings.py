"""Where the data comes from and where it goes, read once from the environment into frozen objects.

Real AWS is reached only when ``COGNITO_TARGET=aws`` is set explicitly; with the default (``local``)
every client is pointed at the local Cognito import service with dummy credentials.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_LOGS_ROLE_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/service-role/Cognito-UserImport-Role"
DEFAULT_LOCAL_PORT = 9229
# ListUsers is in the quota category UserList: 30 requests a second per account and Region, shared by
# every pool and application there, and not adjustable (the developer guide's quota table; unlike the
# import-job categories it has no 5-a-second cap per pool). Two thirds of it leaves room for the
# application's own calls; a throttled page is retried with backoff.
AWS_LIST_USERS_RPS = 20.0
# CreateUserImportJob's CloudWatchLogsRoleArn (fact 44: botocore's ArnType, 20 to 2,048 characters); a
# value that breaks it was refused only at the first job, after the whole plan
_ROLE_ARN = re.compile(r"arn:[\w+=/,.@-]+:[\w+=/,.@-]+:([\w+=/,.@-]*)?:[0-9]+:[\w+=/,.@-]+(:[\w+=/,.@-]+)?"
                       r"(:[\w+=/,.@-]+)?", re.ASCII)
# what botocore takes for a region name (utils.validate_region_name)
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?", re.ASCII)

# the hosts of AWS's own endpoints (commercial, China, the dual-stack api.aws)
_AWS_DOMAINS = ("amazonaws.com", "amazonaws.com.cn", "api.aws")


def shown_url(url: str) -> str:
    """``url`` as a message shows it: a user name and password in it (``http://user:secret@host``) as
    ``***``, since messages, logs and CI output are read by others."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TargetSettings:
    """The Cognito side: the local service (default) or real AWS."""

    kind: str = "local"                      # "local" | "aws"
    region: str = "us-east-1"
    endpoint_url: str | None = None          # local only; None = start/attach the local service
    user_pool_id: str | None = None          # aws: the pool, unless a tenant's mapping names one
    logs_role_arn: str = LOCAL_LOGS_ROLE_ARN
    # ListUsers pages per second for the final check against the pool: unlimited locally; on AWS
    # AWS_LIST_USERS_RPS unless COGNITO_LIST_USERS_RPS says otherwise
    list_users_pages_per_second: float = 0.0
    local_port: int = DEFAULT_LOCAL_PORT     # where `make migrate` finds or starts the local service

    @property
    def is_aws(self) -> bool:
        return self.kind == "aws"


@dataclass(frozen=True)
class Settings:
    source_url: str
    mappings_dir: Path
    sql_dir: Path
    runs_dir: Path
    target: TargetSettings = field(default_factory=TargetSettings)

    @property
    def demo_db(self) -> Path:
        return self.runs_dir.parent / "var" / "demo-legacy.sqlite"


def _number(env: dict[str, str], name: str, default: float, problems: list[str], *,
            low: float = 0, high: float = float("inf"), hint: str = "a number of at least 0 (0 means no limit)",
            whole: bool = False) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high or (whole and not value.is_integer()):   # a port of 9229.5 is no port
        problems.append(f"{name}={raw!r}: write {hint}")
        return default
    return value


def load_settings(env: dict[str, str] | None = None, root: Path = PROJECT_ROOT) -> Settings:
    """Read settings from ``env`` (default ``os.environ``); report every problem at once."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    kind = env.get("COGNITO_TARGET", "local").strip().lower() or "local"
    if kind not in ("local", "aws"):
        problems.append(f"COGNITO_TARGET={kind!r}: write 'local' (the default) or 'aws'")
    # the first of these set; surrounding blanks (a line copied from a console) are dropped, as botocore
    # refuses them with a traceback, and so the other values it refuses
    region_name = next((n for n in ("COGNITO_REGION", "AWS_REGION", "AWS_DEFAULT_REGION") if env.get(n, "").strip()),
                       "COGNITO_REGION")
    region = env.get(region_name, "").strip()
    bad_region = bool(region) and not _REGION.fullmatch(region)
    if bad_region:
        problems.append(f"{region_name}={env[region_name]!r} is not an AWS region: write one such as ap-northeast-1 "
                        "(a user pool id starts with its region)")
        region = ""
    if kind == "aws":
        if not region and not bad_region:
            problems.append("COGNITO_TARGET=aws needs a region: set COGNITO_REGION (or AWS_REGION)")
        role = env.get("COGNITO_LOGS_ROLE_ARN", "")
        if role and not (_ROLE_ARN.fullmatch(role) and 20 <= len(role) <= 2048 and ":role/" in role):
            problems.append(f"COGNITO_LOGS_ROLE_ARN={role!r} is not an IAM role's ARN: write the whole ARN, "
                            "arn:aws:iam::<account id>:role/<path and name> (IAM shows it on the role's page)")
        if not role:
            problems.append("COGNITO_TARGET=aws needs COGNITO_LOGS_ROLE_ARN: the role Cognito uses to write "
                            "the import log (import-rules fact 40)")
        if env.get("COGNITO_ENDPOINT_URL"):
            problems.append("COGNITO_ENDPOINT_URL is for the local service; unset it with COGNITO_TARGET=aws")
        pool_id = env.get("COGNITO_USER_POOL_ID", "")
        if pool_id and not re.fullmatch(r"[\w-]+_[0-9a-zA-Z]+", pool_id, re.ASCII):
            problems.append(f"COGNITO_USER_POOL_ID={pool_id!r} is not a user pool id; it looks like "
                            "ap-northeast-1_AbCdEf123 (the pool's page in the Cognito console shows it)")
    endpoint = env.get("COGNITO_ENDPOINT_URL", "").strip()
    if kind == "local" and endpoint:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            problems.append(f"COGNITO_ENDPOINT_URL={endpoint!r} is not a URL: write the local service's, such as "
                            f"http://127.0.0.1:{DEFAULT_LOCAL_PORT}, or unset it to have the service started")
        elif any(host == d or host.endswith("." + d) for d in _AWS_DOMAINS):
            problems.append(f"COGNITO_ENDPOINT_URL={endpoint!r} is real AWS, not the local service: for AWS set "
                            "COGNITO_TARGET=aws (with COGNITO_REGION) and unset COGNITO_ENDPOINT_URL")
    rps = _number(env, "COGNITO_LIST_USERS_RPS", AWS_LIST_USERS_RPS if kind == "aws" else 0.0, problems)
    port = _number(env, "LOCAL_COGNITO_PORT", DEFAULT_LOCAL_PORT, problems, low=1, high=65535,
                   hint="a port number from 1 to 65535", whole=True)
    if problems:
        raise ConfigError("The environment does not describe a usable target:", problems)
    target = TargetSettings(
        kind=kind,
        region=region or "us-east-1",
        endpoint_url=(endpoint or None) if kind == "local" else None,
        user_pool_id=env.get("COGNITO_USER_POOL_ID") or None,
        logs_role_arn=env.get("COGNITO_LOGS_ROLE_ARN", LOCAL_LOGS_ROLE_ARN) if kind == "aws"
        else LOCAL_LOGS_ROLE_ARN,
        list_users_pages_per_second=rps,
        local_port=int(port),
    )
    # an empty directory variable (MIGRATE_RUNS_DIR= in a script or a compose file) is unset, as every
    # other variable's: Path("") is the working directory, which the plan would fill with tenant
    # directories and the ledger, and chmod 0700. Surrounding blanks (a line copied from a console, the \r
    # of an env file saved with CRLF) are dropped: " /srv/runs" is a directory " " in the working one, and
    # a URL's blank made SQLAlchemy's "Could not parse" or the database name "legacy\r" that does not exist
    runs_dir = Path(env.get("MIGRATE_RUNS_DIR", "").strip() or root / "runs")
    settings = Settings(
        source_url=env.get("LEGACY_DB_URL", "").strip(),
        mappings_dir=Path(env.get("MIGRATE_MAPPINGS_DIR", "").strip() or root / "mappings"),
        sql_dir=Path(env.get("MIGRATE_SQL_DIR", "").strip() or root / "sql"),
        runs_dir=runs_dir,
        target=target,
    )
    if not settings.source_url:
        settings = Settings(**{**settings.__dict__, "source_url": f"sqlite:///{settings.demo_db}"})
    return settings
