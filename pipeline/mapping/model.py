"""The checked mapping as frozen objects (built by ``pipeline.mapping.spec.load_mapping``)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.mapping._yaml import Origins, Path_
from pipeline.mapping.transforms import template_fields

USERNAME = "cognito:username"
META_COLUMNS = ("_legacy_id", "_tenant")


@dataclass(frozen=True)
class Step:
    """One transform with its (checked, completed) arguments."""

    name: str
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)


@dataclass(frozen=True)
class AttributeRule:
    """How one Cognito column is produced: exactly one of ``source``/``template``/``constant``."""

    target: str
    source: str | None = None          # a source column
    template: str | None = None        # "{first_name} {last_name}"; {tenant} is the tenant name
    constant: str | None = None        # already has {tenant} filled in
    steps: tuple[Step, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns this rule reads."""
        if self.source is not None:
            return (self.source,)
        if self.template is not None:
            return tuple(f for f in template_fields(self.template) if f != "tenant")
        return ()


@dataclass(frozen=True)
class UsernameRule:
    strategy: str                      # column | email | phone | legacy_id | template
    column: str | None = None
    template: str | None = None
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class RowPolicy:
    """soft_deleted: a row whose ``column`` has a value; disabled: one whose value is not in
    ``active_values`` (NA included). ``action`` reject sends it to the rejects, import keeps it."""

    column: str
    action: str
    active_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class DuplicatesPolicy:
    """Executed by the validator across the whole tenant. ``keys`` are mapped-frame columns
    (``cognito:username``, ``email``, ...); empty means no duplicate check. ``keep``: first (source
    order), latest (greatest ``order_by``, a mapped column such as ``updated_at``, compared as
    numbers), none (every holder of a shared value is rejected)."""

    keys: tuple[str, ...] = ()
    keep: str = "first"
    order_by: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.keys)


@dataclass(frozen=True)
class Identity:
    """The attributes that tell one person's account from another's, as a mapping names them: the email,
    the attribute that keeps the legacy primary key and the one that holds the tenant (None: not mapped).
    The defaults are the shipped mapping's names."""

    email: str | None = "email"
    legacy_id: str | None = "custom:legacy_id"
    tenant: str | None = "custom:tenant_id"

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(a for a in (self.email, self.legacy_id, self.tenant) if a is not None)


SHIPPED_IDENTITY = Identity()


@dataclass(frozen=True)
class TenantMapping:
    """A tenant's checked mapping. Build it with ``load_mapping``."""

    tenant: str
    sql_file: str                      # relative to the SQL directory, e.g. "users.sql"
    primary_key: str
    default_region: str | None
    partition_rows: int
    username: UsernameRule
    attributes: tuple[AttributeRule, ...]
    soft_deleted: RowPolicy | None
    disabled: RowPolicy | None
    newlines: str
    duplicates: DuplicatesPolicy
    invalid_optional: str              # reject | drop: a value of an optional attribute that breaks its rule
    reject_threshold: float
    chunk_rows: int
    canary_rows: int
    digest: str                        # sha256 of the merged mapping (canonical JSON)
    files: tuple[str, ...]             # the files merged, as messages name them
    _params: tuple[tuple[str, Any], ...] = field(repr=False)
    _merged_json: str = field(repr=False, compare=False)
    _origins: Origins = field(repr=False, compare=False)

    @property
    def params(self) -> dict[str, Any]:
        """Bound parameters for the SQL: source.params ({tenant} filled in) plus filters."""
        return dict(self._params)

    @property
    def pool(self) -> dict[str, Any]:
        """The ``pool:`` section (a fresh copy): ``user_pool_id`` and/or ``local`` (CreateUserPool kwargs)."""
        return json.loads(self._merged_json).get("pool", {})

    @property
    def user_pool_id(self) -> str | None:
        return self.pool.get("user_pool_id")

    @property
    def targets(self) -> tuple[str, ...]:
        """The Cognito columns the mapping produces, username first."""
        return (USERNAME, *(r.target for r in self.attributes))

    @property
    def identity(self) -> Identity:
        """``email`` if mapped; the attribute copied from the primary key (``from:`` it, or a template of
        it alone), else one whose template names only the key and the tenant (``legacy-{id}``, the same
        function of the key on every row: equal values, the same legacy user), a custom attribute first
        in each; the one that holds just the tenant's name (a constant, or a template of ``{tenant}``
        alone, ``org-{tenant}``)."""
        rules = sorted(self.attributes, key=lambda r: not r.target.startswith("custom:"))
        key, tenant = self.primary_key, "tenant"

        def fields(rule: AttributeRule) -> set[str]:
            return set(template_fields(rule.template)) if rule.template is not None else set()

        copies = [r.target for r in rules if r.source == key or r.template == f"{{{key}}}"]
        keyed = [r.target for r in rules if key in fields(r) and fields(r) <= {key, tenant}]
        return Identity(
            email="email" if "email" in self.targets else None,
            legacy_id=next(iter(copies + keyed), None),
            tenant=next((r.target for r in rules if r.constant == self.tenant or fields(r) == {tenant}), None))

    def as_dict(self) -> dict[str, Any]:
        """The merged mapping (default overlaid by the tenant file), as plain data."""
        return json.loads(self._merged_json)

    def where(self, path: Path_) -> str:
        """``file: key.path (line n)`` for messages about ``path``."""
        return where(self._origins, path, self.files[-1])


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def where(origins: Origins, path: Path_, fallback: str) -> str:
    label, line = origins.locate(path, fallback)
    return f"{label}: {dotted(path)}" + (f" (line {line})" if line else "")
