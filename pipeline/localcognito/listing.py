"""ListUsers without a filter, in constant time per page.

moto's ListUsers copies the pool's users into a list and scans it for the pagination token on every
page, so listing a pool costs O(n²): about 50 ms a page at 35,000 users and far more at 500,000,
which made the pipeline's confirmation against the pool the slowest step of a migrate. This serves
the same response shape from the pool's insertion-ordered user dict with an offset token. A filtered
ListUsers still goes to moto. As on AWS, users added or removed while a listing is under way may be
missed or seen twice; the token is opaque to clients.
"""

from __future__ import annotations

import base64
from datetime import datetime
from enum import Enum
from typing import Any

from moto.cognitoidp.models import CognitoIdpUserPool

from pipeline.localcognito.errors import InvalidParameter

MAX_LIMIT = 60


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Enum):
        return value.value
    return value


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("users#"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameter("Invalid pagination token.") from exc


_snapshots: dict[str, tuple[int, list[Any]]] = {}


def _users(pool: CognitoIdpUserPool, start: int) -> list[Any]:
    """The pool's users as a list, snapshotted when a listing starts (offset 0) and reused by its later
    pages while the pool keeps its size, so each page is a slice rather than a walk from the start."""
    cached = _snapshots.get(pool.id)
    if start == 0 or cached is None or cached[0] != len(pool.users):
        cached = (len(pool.users), list(pool.users.values()))
        _snapshots[pool.id] = cached
    return cached[1]


def list_users_page(pool: CognitoIdpUserPool, params: dict[str, Any]) -> dict[str, Any]:
    limit = int(params.get("Limit") or MAX_LIMIT)
    if not 0 < limit <= MAX_LIMIT:
        raise InvalidParameter(f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                               f"constraint: Member must have value less than or equal to {MAX_LIMIT}")
    start = _offset(params.get("PaginationToken"))
    wanted = params.get("AttributesToGet")
    users = _users(pool, start)[start:start + limit]
    page = [{k: _plain(v) for k, v in u.to_json(extended=True, attributes_to_get=wanted).items()}
            for u in users]
    response: dict[str, Any] = {"Users": page}
    if start + limit < len(pool.users):
        response["PaginationToken"] = base64.urlsafe_b64encode(f"users#{start + limit}".encode()).decode()
    return response
