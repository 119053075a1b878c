"""The pre-signed upload URL (fact 25), served by this same server instead of S3.

The URL has the shape of Cognito's S3 URL (``X-Amz-Expires`` = lifetime - 1, signed headers
``host;x-amz-server-side-encryption``) and is signed with an HMAC over the method, path, date, expiry
and signed headers using a per-process secret. A PUT is accepted only with a valid signature, within
the URL's lifetime, with ``x-amz-server-side-encryption: aws:kms``, and while the job is Created;
everything else gets S3's XML 403. The host is not signed, so 127.0.0.1 and localhost both work.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from urllib.parse import quote, urlencode

BUCKET = "aws-cognito-idp-user-import-local"
SIGNED_HEADERS = "host;x-amz-server-side-encryption"
_SECRET = secrets.token_bytes(32)
MSG_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                 "Check your key and signing method.")


def object_path(account: str, pool_id: str, job_id: str) -> str:
    return f"/{BUCKET}/{account}/{pool_id}/{job_id}"


def _signature(method: str, path: str, date: str, expires: str, signed: str) -> str:
    text = "\n".join((method, path, date, expires, signed))
    return hmac.new(_SECRET, text.encode(), hashlib.sha256).hexdigest()


def presign(base_url: str, path: str, region: str, ttl_seconds: float, now: float) -> str:
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    expires = str(max(int(ttl_seconds) - 1, 0))               # fact 25: 900 s -> X-Amz-Expires=899
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"LOCALCOGNITO/{date[:8]}/{region}/s3/aws4_request",
        "X-Amz-Date": date,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": SIGNED_HEADERS,
        "X-Amz-Signature": _signature("PUT", path, date, expires, SIGNED_HEADERS),
    }
    return f"{base_url}{quote(path)}?{urlencode(query)}"


def check_signature(method: str, path: str, query: dict[str, str]) -> bool:
    try:
        expected = _signature(method, path, query["X-Amz-Date"], query["X-Amz-Expires"],
                              query["X-Amz-SignedHeaders"])
    except KeyError:
        return False
    return hmac.compare_digest(expected, query.get("X-Amz-Signature", ""))


def s3_error(code: str, message: str) -> bytes:
    rid = uuid.uuid4().hex[:16].upper()
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{rid}</RequestId><HostId>{rid}</HostId></Error>").encode()
