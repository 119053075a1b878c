"""The Cognito adapter: the only module that imports boto3.

Local target: every client points at the local import service with dummy credentials, whatever AWS
variables or profiles the environment holds, so real AWS cannot be reached by accident. AWS target:
the normal credential chain and region.

Retries are ours, not botocore's (its retries are switched off): throttling, internal errors, 5xx and
connection errors are retried with exponential backoff and full jitter, a bounded number of times;
a final failure becomes a ``LoadError`` (or ``TransientLoadError``) naming the operation. A pre-signed
URL never appears in a message: its ``X-Amz-*`` parameters are masked.

Listing a whole pool (``list_user_pages``) runs several ListUsers listings at once, one per ``sub``
prefix (``sub ^= "0"`` ... ``"f"``, a filter AWS supports; a sub is a lowercase UUID, so every user is in
exactly one shard), with one page rate shared by all of them. A ListUsers body is read with
``orjson.loads`` rather than botocore's shape-by-shape parser, which took most of a page's client time.
"""

from __future__ import annotations

import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import orjson
from botocore.config import Config

from pipeline.errors import ConfigError, LoadError, TransientLoadError
from pipeline.fanout import Pacer, interleave
from pipeline.masking import scrub_text
from pipeline.settings import LOCAL_LOGS_ROLE_ARN, TargetSettings, shown_url

RETRYABLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "InternalErrorException",
        "ThrottlingException",
        "ServiceUnavailable",
        "RequestLimitExceeded",
    }
)
_AMZ_PARAM = re.compile(r"((?:X-Amz-|x-amz-)[A-Za-z-]+=)[^&\s]*")
# Every user of a pool is in exactly one of these ListUsers filters: a sub is a lowercase UUID.
SUB_SHARDS = tuple(f'sub ^= "{c}"' for c in "0123456789abcdef")
_USER_DATES = ("UserCreateDate", "UserLastModifiedDate")


def mask_url(url: str) -> str:
    """A URL safe for a message: every ``X-Amz-*`` query parameter's value replaced by ``***``."""
    return _AMZ_PARAM.sub(r"\1***", url)


class CognitoCallError(LoadError):
    """Cognito refused a call for a reason retrying does not fix; ``code`` is its error code."""

    def __init__(self, message: str, *, code: str = "", operation: str = "", **ids: str | None) -> None:
        super().__init__(message, **ids)
        self.code = code
        self.operation = operation


class PreconditionNotMet(CognitoCallError):
    """PreconditionNotMetException: e.g. no file uploaded, another job active, job not startable."""


class ResourceNotFound(CognitoCallError):
    """ResourceNotFoundException / UserNotFoundException."""


class UrlExpired(LoadError):
    """The job's pre-signed upload URL has expired; only a new job can take the file (fact 25)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep ``uniform(0, min(cap, base * 2**attempt))``."""

    max_attempts: int = 8
    base_seconds: float = 0.25
    cap_seconds: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        return self.jitter() * min(self.cap_seconds, self.base_seconds * (2**attempt))


def _plain_list_users(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                      operation_model: Any, **_: Any) -> None:
    """botocore ``before-parse`` handler for ListUsers: read a successful body with ``orjson.loads``.

    botocore's parser walks the output shape value by value and turns each date through ``tzlocal``:
    ~5 ms of a 60-user page, most of the client's time when a whole pool is listed. The body is the
    documented JSON; this gives the same dict (the shape's members only; dates as UTC datetimes rather
    than local ones, the same instants). The body botocore then parses is emptied; its
    ``ResponseMetadata`` is kept. Errors are left to botocore, so retries and error codes are unchanged.
    """
    if response_dict.get("status_code") != 200 or not response_dict.get("body"):
        return
    body = orjson.loads(response_dict["body"])
    output = operation_model.output_shape.members
    members = frozenset(output["Users"].member.members)
    users = []
    for raw in body.get("Users") or []:
        user = {k: v for k, v in raw.items() if k in members}
        for key in _USER_DATES:
            value = user.get(key)
            if isinstance(value, (int, float)):
                user[key] = datetime.fromtimestamp(value, UTC)
        users.append(user)
    customized_response_dict.update({k: v for k, v in body.items() if k in output})
    customized_response_dict["Users"] = users
    response_dict["body"] = b"{}"


# the AWS credential chain's and shared config's mistakes, met at the session, the client or the first call (an
# SSO or assumed-role profile resolves then): a profile that does not exist, a config file that does not parse,
# half the keys, a failing credential_process, an expired SSO login. The user's to fix, not a traceback.
_CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.NoRegionError, botocore.exceptions.ProfileNotFound, botocore.exceptions.ConfigParseError,
    botocore.exceptions.ConfigNotFound, botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.InvalidConfigError, botocore.exceptions.SSOError, botocore.exceptions.TokenRetrievalError,
    botocore.exceptions.UnknownCredentialError, botocore.exceptions.RefreshWithMFAUnsupportedError,
)


def _credential_problem(operation: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"{operation}: {exc}. With COGNITO_TARGET=aws, credentials come from the usual AWS chain: "
        "set AWS_PROFILE (a profile in ~/.aws/config or AWS_CONFIG_FILE; after `aws sso login` for an SSO one), "
        "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and COGNITO_REGION."
    )


def _client_config() -> Config:
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="cognito-migrate",
    )


class CognitoTarget:
    """One Cognito endpoint (local service or an AWS region) with the calls the pipeline needs."""

    def __init__(
        self,
        *,
        idp: Any,
        logs: Any,
        kind: str,
        region: str,
        endpoint_url: str | None,
        retry: RetryPolicy | None = None,
        sts: Any = None,
        logs_role_arn: str = LOCAL_LOGS_ROLE_ARN,
    ) -> None:
        self._idp = idp
        self._logs = logs
        self._sts = sts
        self.kind = kind
        self.region = region
        self.endpoint_url = endpoint_url
        self.logs_role_arn = logs_role_arn
        self.retry = retry or RetryPolicy()
        self._account_key: str | None = None
        proxies: dict[str, str] | None = {} if kind == "local" else None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        self.calls: dict[str, int] = {}  # operation -> attempts made (for tests and the report)
        self._calls_lock = threading.Lock()
        idp.meta.events.register("before-parse.cognito-identity-provider.ListUsers", _plain_list_users)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @classmethod
    def from_settings(
        cls, target: TargetSettings, endpoint_url: str | None = None, retry: RetryPolicy | None = None
    ) -> CognitoTarget:
        if target.is_aws:
            if endpoint_url:
                raise ConfigError("An endpoint URL is for the local service; the AWS target takes none.")
            cfg = _client_config()
            try:   # the credential chain runs here: a missing profile, half the keys, a failing credential_process
                session = boto3.session.Session(region_name=target.region)
                idp, logs, sts = (session.client(name, config=cfg) for name in ("cognito-idp", "logs", "sts"))
            except _CREDENTIAL_ERRORS as exc:
                raise _credential_problem("AWS credentials", exc) from None
            return cls(
                idp=idp,
                logs=logs,
                sts=sts,
                kind="aws",
                region=target.region,
                endpoint_url=None,
                retry=retry,
                logs_role_arn=target.logs_role_arn,
            )
        url = endpoint_url or target.endpoint_url
        if not url:
            raise ConfigError(
                "The local target needs the local service's endpoint URL (start it with "
                "`make serve-cognito`, or set COGNITO_ENDPOINT_URL)."
            )
        session = isolated_session(target.region)
        cfg = _client_config().merge(Config(proxies={}))
        return cls(
            idp=session.client("cognito-idp", endpoint_url=url, config=cfg),
            logs=session.client("logs", endpoint_url=url, config=cfg),
            kind="local",
            region=target.region,
            endpoint_url=url,
            retry=retry,
            logs_role_arn=target.logs_role_arn,
        )

    @property
    def account_key(self) -> str:
        """What the run lock is keyed on: one import job at a time per account and region (fact 27)."""
        if self._account_key is None:
            if self.is_local:
                self._account_key = f"local:{self.endpoint_url}:{self.region}"
            else:
                ident = self._call("GetCallerIdentity", self._sts.get_caller_identity)
                self._account_key = f"aws:{ident['Account']}:{self.region}"
        return self._account_key

    # ---- the retry policy -------------------------------------------------------------------------

    def _call(self, operation: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        last, unreachable = "", False
        for attempt in range(self.retry.max_attempts):
            with self._calls_lock:
                self.calls[operation] = self.calls.get(operation, 0) + 1
            try:
                return fn(**kwargs)
            except botocore.exceptions.ClientError as exc:
                err = exc.response.get("Error", {})
                code = str(err.get("Code", ""))
                message = scrub_text(str(err.get("Message", "")))   # AWS may quote the request's values
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code in RETRYABLE_CODES or status >= 500:
                    last, unreachable = f"{code or status}: {message}", False
                else:
                    raise _refusal(operation, code, message) from None
            except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
                last = type(exc).__name__
                unreachable = isinstance(exc, botocore.exceptions.ConnectionError)
            except _CREDENTIAL_ERRORS as exc:
                raise _credential_problem(operation, exc) from None
            if attempt + 1 < self.retry.max_attempts:
                self.retry.sleep(self.retry.delay(attempt))
        if unreachable:
            client = getattr(getattr(fn, "__self__", None), "meta", None)
            where = shown_url(getattr(client, "endpoint_url", None) or self.endpoint_url or "the endpoint")
            check = ("is the local Cognito service running there? `make migrate` starts one on its default "
                     "port; for another COGNITO_ENDPOINT_URL start it yourself (make serve-cognito PORT=...)"
                     if self.is_local else
                     "check the network, any proxy (HTTPS_PROXY) and the region (COGNITO_REGION)")
            raise TransientLoadError(
                f"{operation}: cannot reach {where} after {self.retry.max_attempts} attempts ({last}); {check}. "
                "Then rerun the same command (a migrate resumes where it stopped)."
            )
        raise TransientLoadError(
            f"{operation} still failing after {self.retry.max_attempts} attempts ({last}); "
            "Cognito is throttling or unavailable: rerun the same command later (a migrate resumes where it "
            "stopped)."
        )

    # ---- pools and the contract -------------------------------------------------------------------

    def get_csv_header(self, pool_id: str) -> list[str]:
        return list(self._call("GetCSVHeader", self._idp.get_csv_header, UserPoolId=pool_id)["CSVHeader"])

    def describe_user_pool(self, pool_id: str) -> dict[str, Any]:
        return dict(
            self._call("DescribeUserPool", self._idp.describe_user_pool, UserPoolId=pool_id)["UserPool"]
        )

    def find_or_create_local_pool(self, params: dict[str, Any], where: str = "pool.local") -> str:
        """The id of the local pool named ``params['PoolName']``, created with ``params`` if absent;
        ``where`` names the parameters' place in the mapping for a message about them."""
        if not self.is_local:
            raise ConfigError("Pools are only created on the local service; on AWS name an existing pool.")
        name = params.get("PoolName")
        if not name:
            raise ConfigError("pool.local needs a PoolName (the CreateUserPool parameters).")
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MaxResults": 60}
            if token:
                kwargs["NextToken"] = token
            page = self._call("ListUserPools", self._idp.list_user_pools, **kwargs)
            for pool in page.get("UserPools", []):
                if pool.get("Name") == name:
                    return str(pool["Id"])
            token = page.get("NextToken")
            if not token:
                break
        try:
            created = self._call("CreateUserPool", self._idp.create_user_pool, **params)
        except botocore.exceptions.ParamValidationError as exc:   # botocore's own check, before any call
            report = str(exc.kwargs.get("report", exc)).strip().replace("\n", "; ")
            raise ConfigError(f"{where}: CreateUserPool does not take these parameters ({report}); fix them as "
                              "the CreateUserPool API reference spells them") from None
        return str(created["UserPool"]["Id"])

    # ---- import jobs ------------------------------------------------------------------------------

    def create_import_job(self, pool_id: str, job_name: str, role_arn: str) -> dict[str, Any]:
        return _job(
            self._call(
                "CreateUserImportJob",
                self._idp.create_user_import_job,
                UserPoolId=pool_id,
                JobName=job_name,
                CloudWatchLogsRoleArn=role_arn,
            )["UserImportJob"]
        )

    def start_import_job(self, pool_id: str, job_id: str) -> dict[str, Any]:
        return _job(
            self._call(
                "StartUserImportJob", self._idp.start_user_import_job, UserPoolId=pool_id, JobId=job_id
            )["UserImportJob"]
        )

    def describe_import_job(self, pool_id: str, job_id: str) -> dict[str, Any]:
        return _job(
            self._call(
                "DescribeUserImportJob", self._idp.describe_user_import_job, UserPoolId=pool_id, JobId=job_id
            )["UserImportJob"]
        )

    def stop_import_job(self, pool_id: str, job_id: str) -> dict[str, Any]:
        return _job(
            self._call("StopUserImportJob", self._idp.stop_user_import_job, UserPoolId=pool_id, JobId=job_id)[
                "UserImportJob"
            ]
        )

    def list_import_jobs(self, pool_id: str) -> list[dict[str, Any]]:
        """Every import job of the pool, newest first (fact 31)."""
        jobs: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"UserPoolId": pool_id, "MaxResults": 60}
            if token:
                kwargs["PaginationToken"] = token
            page = self._call("ListUserImportJobs", self._idp.list_user_import_jobs, **kwargs)
            jobs.extend(_job(j) for j in page.get("UserImportJobs", []))
            new = page.get("PaginationToken")
            if not new or new == token:
                return jobs
            token = new

    def upload(self, presigned_url: str, path: Path) -> None:
        """PUT the file to the job's pre-signed URL with the KMS header it was signed for (fact 25)."""
        if self.is_local and self.endpoint_url and _origin(presigned_url) != _origin(self.endpoint_url):
            # the local service hands out URLs on its own host: one elsewhere (a real S3 bucket, another
            # machine) would carry every user's email, phone and name off this machine
            raise LoadError(
                f"The local Cognito service at {shown_url(self.endpoint_url)} gave {path.name} an upload URL on "
                f"another host ({mask_url(presigned_url)}); nothing was sent. The local target uploads only to its own "
                "service: check that COGNITO_ENDPOINT_URL is this project's local service (make serve-cognito)."
            )
        size = path.stat().st_size
        last = ""
        for attempt in range(self.retry.max_attempts):
            self.calls["Upload"] = self.calls.get("Upload", 0) + 1
            try:
                with open(path, "rb") as body:
                    request = urllib.request.Request(
                        presigned_url,
                        data=body,
                        method="PUT",
                        headers={"x-amz-server-side-encryption": "aws:kms", "Content-Length": str(size)},
                    )
                    with self._opener.open(request, timeout=300) as resp:
                        resp.read()
                        return
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace") if exc.fp else ""
                if exc.code == 403 and "expired" in text.lower():
                    raise UrlExpired(
                        f"The upload URL of {path.name} has expired; a new import job is needed "
                        f"({mask_url(presigned_url)})."
                    ) from None
                if exc.code < 500:
                    code = re.search(r"<Code>([^<]+)</Code>", text)
                    raise LoadError(
                        f"Uploading {path.name} was refused: HTTP {exc.code} "
                        f"{code.group(1) if code else ''} ({mask_url(presigned_url)})."
                    ) from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = type(exc).__name__
            if attempt + 1 < self.retry.max_attempts:
                self.retry.sleep(self.retry.delay(attempt))
        raise TransientLoadError(
            f"Uploading {path.name} still failing after {self.retry.max_attempts} attempts "
            f"({last}); rerun later ({mask_url(presigned_url)})."
        )

    def job_log_events(self, pool_id: str, pool_name: str, job_id: str, job_name: str) -> list[str] | None:
        """The messages of a job's log stream in order (fact 33), or None if the stream does not exist."""
        group = f"/aws/cognito/userpools/{pool_id}/{pool_name}"
        stream = f"{job_id}/{job_name}"
        messages: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            try:
                page = self._call("GetLogEvents", self._logs.get_log_events, **kwargs)
            except ResourceNotFound:
                return None if not messages else messages
            messages.extend(str(e.get("message", "")) for e in page.get("events", []))
            new = page.get("nextForwardToken")
            if not new or new == token:
                return messages
            token = new

    # ---- users ------------------------------------------------------------------------------------

    def list_users(
        self, pool_id: str, filter: str | None = None, attributes: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every user of the pool (or those matching ``filter``), 60 per call, one call at a time."""
        for page in self._user_pages(pool_id, filter, attributes, Pacer(0), threading.Event()):
            yield from page

    def list_user_pages(
        self, pool_id: str, *, filters: tuple[str, ...] = SUB_SHARDS, listings: int = 4,
        pages_per_second: float = 0.0,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every user of the pool, in pages of up to 60, from one listing per filter, ``listings`` at once.

        With the default ``SUB_SHARDS`` each user comes once. ``pages_per_second`` (0 = no limit) caps
        all listings together: ListUsers is rate-limited per account. Pages come in no fixed order. An
        error of any listing ends the iteration with that error; closing the iterator early stops them.
        """
        pacer = Pacer(pages_per_second)

        def listing(flt: str) -> Callable[[threading.Event], Iterator[list[dict[str, Any]]]]:
            return lambda stop: self._user_pages(pool_id, flt, None, pacer, stop)

        return interleave([listing(f) for f in filters], listings)

    def _user_pages(
        self, pool_id: str, filter: str | None, attributes: list[str] | None, pacer: Pacer,
        stop: threading.Event,
    ) -> Iterator[list[dict[str, Any]]]:
        token: str | None = None
        while not stop.is_set():
            kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": 60}
            if filter:
                kwargs["Filter"] = filter
            if attributes is not None:
                kwargs["AttributesToGet"] = attributes
            if token:
                kwargs["PaginationToken"] = token
            pacer.wait()
            page = self._call("ListUsers", self._idp.list_users, **kwargs)
            yield list(page.get("Users", []))
            token = page.get("PaginationToken")
            if not token:
                return

    def admin_get_user(self, pool_id: str, username: str) -> dict[str, Any] | None:
        """The user, in ListUsers' shape (``Attributes``), or None if the pool has no such user."""
        try:
            user = self._call("AdminGetUser", self._idp.admin_get_user, UserPoolId=pool_id, Username=username)
        except ResourceNotFound:
            return None
        user = dict(user)
        user.pop("ResponseMetadata", None)
        user["Attributes"] = user.pop("UserAttributes", [])
        return user


def _job(job: Mapping[str, Any]) -> dict[str, Any]:
    """An import job as Cognito describes it, its CompletionMessage scrubbed of any address or phone
    number it may quote: it reaches the ledger, the run report and the terminal."""
    out = dict(job)
    if isinstance(out.get("CompletionMessage"), str):
        out["CompletionMessage"] = scrub_text(out["CompletionMessage"])
    return out


def _origin(url: str) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the scheme's default when none is written)."""
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port if port is not None else default


def _refusal(operation: str, code: str, message: str) -> CognitoCallError:
    text = f"{operation} refused: {code}: {message}"
    if code == "PreconditionNotMetException":
        return PreconditionNotMet(text, code=code, operation=operation)
    if code in ("ResourceNotFoundException", "UserNotFoundException"):
        return ResourceNotFound(text, code=code, operation=operation)
    return CognitoCallError(text, code=code, operation=operation)


def isolated_session(region: str) -> boto3.session.Session:
    """A session that reads no AWS config, profile or credential from the environment or disk."""
    # Each variable gets no environment name and no config-file name: AWS_PROFILE, AWS_CONFIG_FILE and
    # ~/.aws are not read at all.
    core = botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, "/dev/null", None),
            "credentials_file": (None, None, "/dev/null", None),
        }
    )
    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token=None,
        region_name=region,
        botocore_session=core,
    )
