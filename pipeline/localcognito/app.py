"""The WSGI middleware in front of moto's server app, and the state it serves.

Requests are routed by what they are, never by patching moto:
- ``X-Amz-Target: AWSCognitoIdentityProviderService.<Op>`` for the six import operations -> ``operations``;
- a PUT to ``/aws-cognito-idp-user-import-local/...`` (the pre-signed upload URL) -> the job's upload;
- ``/_localcognito/{health,config,reset-faults}`` -> the control endpoints;
- ListUsers -> ``listing`` (constant time per page), unless moto is needed for its error;
- everything else (CreateUserPool, logs, s3, ...) -> moto, unchanged, except that a CreateUserPool
  body gets its standard schema completed (``header.complete_schema``). A cognito-idp operation that
  may write tells ``listing`` that its snapshots are stale.
Fault injection applies to every cognito-idp operation, moto's included. moto's cognito-idp requests
run under the service lock, which import workers also take for each batch of rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import boto3.session
import botocore.session
import orjson
from moto.cognitoidp.models import CognitoIdpUserPool, cognitoidp_backends
from moto.core.base_backend import AccountSpecificBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from pipeline.localcognito import upload
from pipeline.localcognito.config import Faults, ServiceConfig, apply_settings
from pipeline.localcognito.errors import (
    InternalError,
    InvalidParameter,
    SerializationError,
    ServiceError,
    TooManyRequests,
)
from pipeline.localcognito.header import complete_schema, schema_problem
from pipeline.localcognito.jobs import Job, JobStore
from pipeline.localcognito.listing import admin_user_json, list_users_page, may_write, note_change, parse_filter
from pipeline.localcognito.operations import OPERATIONS, Context, ImportOperations
from pipeline.localcognito.processing import ImportWorker
from pipeline.localcognito.users import get_user

# The project checkout this service runs from (``make migrate`` warns when the service on its port
# belongs to another checkout, whose code may differ).
CHECKOUT = str(Path(__file__).resolve().parents[2])


def _regions_read_no_aws_profile() -> None:
    """moto lists a service's regions, when it makes an account's backends, through a boto3 Session
    built from the environment (``AccountSpecificBackend.get_session``): an AWS_PROFILE that names no
    profile on this machine (a shell or a CI job set up for real AWS) made every call of the local
    service fail with a 500, which the client took for an unavailable Cognito. It gets a session that
    reads no profile, config or credentials file instead; the region list is botocore's own data."""
    core = botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })
    session = boto3.session.Session(botocore_session=core)
    AccountSpecificBackend.get_session = classmethod(lambda cls: session)   # type: ignore[method-assign, assignment]


_regions_read_no_aws_profile()

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
_SCOPE = re.compile(r"Credential=[^/]+/[0-9]+/([^/]+)/")
StartResponse = Callable[..., Any]


class Service:
    """Config, faults, jobs and workers of one running service."""

    def __init__(self, config: ServiceConfig | None = None) -> None:
        self.config = config or ServiceConfig()
        self.faults = Faults()
        self.lock = threading.RLock()
        self.store = JobStore(self.config)
        self.operations = ImportOperations(self.store, self.config, self.faults, self._start_worker)

    def _start_worker(self, job: Job) -> None:
        ImportWorker(job, self.store, self.config, self.faults, self.lock).start()

    def configure(self, **values: Any) -> None:
        apply_settings(self.config, self.faults, values)

    def settings(self) -> dict[str, Any]:
        f = self.faults
        c = self.config
        return {"url_ttl_seconds": c.url_ttl_seconds, "job_ttl_seconds": c.job_ttl_seconds,
                "users_per_second": self.config.users_per_second,
                "max_jobs_per_pool": self.config.max_jobs_per_pool,
                "throttle_rate": f.throttle_rate, "throttle_operations": sorted(f.throttle_operations),
                "internal_error_rate": f.internal_error_rate,
                "internal_error_operations": sorted(f.internal_error_operations),
                "fail_next_jobs": f.fail_next_jobs}


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else b""
    if not length and environ.get("wsgi.input_terminated"):
        data = environ["wsgi.input"].read()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = BytesIO(data), str(len(data))
    return data


def _json_object(body: bytes) -> dict[str, Any] | None:
    """A cognito-idp request's parameters: its body as a JSON object (none at all is ``{}``), else None."""
    try:
        params = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return params if isinstance(params, dict) else None


def _respond(start: StartResponse, status: int, body: bytes, content_type: str,
             extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
              405: "Method Not Allowed", 500: "Internal Server Error"}[status]
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("x-amzn-RequestId", str(uuid.uuid4()))] + (extra or [])
    start(f"{status} {reason}", headers)
    return [body]


def _json_error(start: StartResponse, err: ServiceError) -> list[bytes]:
    return _respond(start, err.status, err.body(), "application/x-amz-json-1.1",
                    [("x-amzn-ErrorType", err.code)])


class LocalCognitoApp:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_localcognito/"):
            return self._control(environ, start, path.removeprefix("/_localcognito/"))
        if path.startswith(f"/{upload.BUCKET}/"):
            return self._upload(environ, start, path)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return self.moto(environ, start)
        op = target.removeprefix(TARGET_PREFIX)
        fault = self.service.faults.check(op)
        if fault == "internal":
            return _json_error(start, InternalError("An internal error occurred (injected fault)."))
        if fault == "throttle":
            return _json_error(start, TooManyRequests("Rate exceeded"))
        params = _json_object(_read_body(environ))
        if params is None:   # moto's handlers and ours read the body as an object: a 500 otherwise
            return _json_error(start, SerializationError("The request body is not a JSON object."))
        if op in OPERATIONS:
            return self._operation(environ, start, op, params)
        if op == "ListUsers":
            fast = self._list_users(environ, start, params)
            if fast is not None:
                return fast
        if op == "AdminGetUser":
            fast = self._admin_get_user(environ, start, params)
            if fast is not None:
                return fast
        if op == "CreateUserPool":
            problem = schema_problem(params.get("Schema"))
            if problem:
                return _json_error(start, InvalidParameter(problem))
            self._complete_schema(environ, params)
        with self.service.lock:
            if not may_write(op):
                return list(self.moto(environ, start))
            try:
                return list(self.moto(environ, start))
            finally:   # after the write: another instance's listing (its own lock) may have run meanwhile
                note_change()

    def _operation(self, environ: dict[str, Any], start: StartResponse, op: str,
                   params: dict[str, Any]) -> list[bytes]:
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        ctx = Context(region=scope.group(1) if scope else "us-east-1",
                      base_url=f"http://{environ.get('HTTP_HOST', 'localhost')}")
        try:
            result = self.service.operations.handle(op, params, ctx)
        except ServiceError as err:
            return _json_error(start, err)
        return _respond(start, 200, json.dumps(result).encode(), "application/x-amz-json-1.1")

    def _list_users(self, environ: dict[str, Any], start: StartResponse,
                    params: dict[str, Any]) -> list[bytes] | None:
        """A ListUsers served in constant time per page (listing.py); None = let moto answer (or refuse)."""
        try:
            flt = parse_filter(params.get("Filter"))
        except ValueError:
            return None
        pool = self._pool(environ, params)
        if pool is None:
            return None
        try:
            with self.service.lock:
                result = list_users_page(pool, params, flt)
        except ServiceError as err:
            return _json_error(start, err)
        # orjson: ~0.1 ms for a 60-user page against ~1.2 ms with json (a whole pool is listed to confirm it)
        return _respond(start, 200, orjson.dumps(result), "application/x-amz-json-1.1")

    def _admin_get_user(self, environ: dict[str, Any], start: StartResponse,
                        params: dict[str, Any]) -> list[bytes] | None:
        """AdminGetUser of an existing user, read from moto's model (its own lookup) without moto's HTTP
        dispatch, which cost ~5 ms a call, paid per user a harvest looks up; None = let moto answer
        (a missing pool or user gets moto's error)."""
        pool = self._pool(environ, params)
        if pool is None or not isinstance(params.get("Username"), str):
            return None
        with self.service.lock:
            user = get_user(pool, params["Username"])
            result = admin_user_json(user) if user is not None else None
        if result is None:
            return None
        return _respond(start, 200, orjson.dumps(result), "application/x-amz-json-1.1")

    def _pool(self, environ: dict[str, Any], params: dict[str, Any]) -> CognitoIdpUserPool | None:
        """The request's user pool in moto's backend for the request's region, or None."""
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        backend = cognitoidp_backends[self.service.config.account_id][scope.group(1) if scope else "us-east-1"]
        return backend.user_pools.get(str(params.get("UserPoolId")))

    @staticmethod
    def _complete_schema(environ: dict[str, Any], params: dict[str, Any]) -> None:
        """CreateUserPool's body, rewritten with the schema completed (``header.complete_schema``)."""
        data = json.dumps({**params, "Schema": complete_schema(params.get("Schema"))}).encode()
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = BytesIO(data), str(len(data))

    def _upload(self, environ: dict[str, Any], start: StartResponse, path: str) -> list[bytes]:
        """The pre-signed PUT (fact 25); S3-style XML 403 for everything it refuses."""
        def deny(code: str, message: str) -> list[bytes]:
            return _respond(start, 403, upload.s3_error(code, message), "application/xml")

        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        method = environ.get("REQUEST_METHOD", "GET")
        if not upload.check_signature(method, unquote(path), query):
            return deny("SignatureDoesNotMatch", upload.MSG_SIGNATURE)
        parts = unquote(path).split("/")          # "", bucket, account, pool, job
        job = self._find_job(parts[3], parts[4]) if len(parts) == 5 else None
        if job is None:
            return deny("AccessDenied", "Access Denied")
        if time.time() >= job.url_expires_at:
            return deny("AccessDenied", "Request has expired")
        if environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION") != "aws:kms":
            return deny("SignatureDoesNotMatch", upload.MSG_SIGNATURE)
        data = _read_body(environ)
        with self.service.store.lock:
            if job.status != "Created":
                return deny("AccessDenied", "Access Denied")
            job.upload = data
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        return _respond(start, 200, b"", "application/xml", [("ETag", etag)])

    def _find_job(self, pool_id: str, job_id: str) -> Job | None:
        region = pool_id.split("_", 1)[0]
        try:
            return self.service.store.get(region, pool_id, job_id)
        except ServiceError:
            return None

    def _control(self, environ: dict[str, Any], start: StartResponse, what: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if what == "health" and method == "GET":
                out = {"status": "ok", "settings": self.service.settings(), "checkout": CHECKOUT,
                       "pid": os.getpid()}
            elif what == "config" and method == "POST":
                self.service.configure(**json.loads(_read_body(environ) or b"{}"))
                out = {"status": "ok", "settings": self.service.settings()}
            elif what == "reset-faults" and method == "POST":
                self.service.faults.reset()
                out = {"status": "ok", "settings": self.service.settings()}
            else:
                return _respond(start, 404, b'{"error": "unknown control endpoint"}', "application/json")
        except (ValueError, TypeError) as exc:
            return _respond(start, 400, json.dumps({"error": str(exc)}).encode(), "application/json")
        return _respond(start, 200, json.dumps(out).encode(), "application/json")
