"""The target pool's rules as one frozen object (import-rules facts 1-18, 45-46).

A ``PoolContract`` is built from the two raw boto3 responses the pipeline reads from Cognito:
``GetCSVHeader`` (the exact column list and order) and ``DescribeUserPool`` (attribute types and
constraints, sign-in configuration, MFA). It can be saved as a JSON snapshot holding both raw
responses, so a plan can be made offline and a pool change between runs shows up as a different
``fingerprint``.

This module does no I/O except the snapshot file; fetching the responses is the Cognito adapter's job.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.errors import ContractError

SNAPSHOT_FORMAT = "cognito-migrate/pool-contract"
SNAPSHOT_VERSION = 1

USERNAME = "cognito:username"
MFA_ENABLED = "cognito:mfa_enabled"
# (attribute, its verified flag): the two attributes Cognito can verify and auto-verify.
VERIFIABLE = (("email", "email_verified"), ("phone_number", "phone_number_verified"))
VERIFIED_FLAG = dict(VERIFIABLE)

# Types of the standard attributes (fact 45), used when DescribeUserPool omits them (moto does).
_STANDARD_TYPES: dict[str, tuple[str, dict[str, str]]] = {
    "email_verified": ("Boolean", {}),
    "phone_number_verified": ("Boolean", {}),
    "updated_at": ("Number", {"MinValue": "0"}),
    "birthdate": ("String", {"MinLength": "10", "MaxLength": "10"}),
}
_MFA_VALUES = ("OFF", "ON", "OPTIONAL")
_DATA_TYPES = ("String", "Number", "DateTime", "Boolean")


@dataclass(frozen=True)
class AttributeSpec:
    """One entry of DescribeUserPool's ``SchemaAttributes``, constraint strings parsed to int."""

    name: str
    data_type: str = "String"
    required: bool = False
    mutable: bool = True
    developer_only: bool = False
    min_length: int | None = None
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def standard_spec(name: str) -> AttributeSpec:
    """The spec a real pool gives a standard attribute, for pools whose response omits it."""
    data_type, limits = _STANDARD_TYPES.get(name, ("String", {"MinLength": "0", "MaxLength": "2048"}))
    spec = _parse_attribute({"Name": name, "AttributeDataType": data_type,
                             "StringAttributeConstraints" if data_type == "String"
                             else "NumberAttributeConstraints": limits}, [])
    assert spec is not None, name   # a well-formed entry always parses
    return spec


@dataclass(frozen=True)
class PoolContract:
    """Everything about the target pool that decides whether a row can be imported."""

    user_pool_id: str
    pool_name: str
    csv_header: tuple[str, ...]
    attributes: Mapping[str, AttributeSpec]
    auto_verified: frozenset[str]
    alias_attributes: frozenset[str]
    username_attributes: frozenset[str]
    mfa: str
    case_sensitive: bool
    _csv_header_response: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    _describe_response: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_responses(cls, csv_header_response: Mapping[str, Any],
                       describe_user_pool_response: Mapping[str, Any]) -> PoolContract:
        """Build the contract from the raw GetCSVHeader and DescribeUserPool responses.

        Raises ``ContractError`` listing every malformed field at once.
        """
        problems: list[str] = []
        if not isinstance(csv_header_response, Mapping):
            csv_header_response = {}
        header_raw = csv_header_response.get("CSVHeader")
        if not isinstance(header_raw, list) or not all(isinstance(c, str) for c in header_raw):
            problems.append("GetCSVHeader response has no 'CSVHeader' list of column names")
            header_raw = []
        pool = describe_user_pool_response.get("UserPool") \
            if isinstance(describe_user_pool_response, Mapping) else None
        if not isinstance(pool, Mapping):
            problems.append("DescribeUserPool response has no 'UserPool' object")
            pool = {}

        attributes: dict[str, AttributeSpec] = {}
        for entry in pool.get("SchemaAttributes") or []:
            spec = _parse_attribute(entry, problems)
            if spec is not None:
                attributes[spec.name] = spec

        mfa = pool.get("MfaConfiguration") or "OFF"
        if mfa not in _MFA_VALUES:
            problems.append(f"DescribeUserPool MfaConfiguration is {mfa!r}; expected one of {_MFA_VALUES}")
        case_sensitive = (pool.get("UsernameConfiguration") or {}).get("CaseSensitive", True)
        pool_id = pool.get("Id") or csv_header_response.get("UserPoolId") or ""
        header_pool = csv_header_response.get("UserPoolId")
        if header_pool and pool.get("Id") and header_pool != pool.get("Id"):
            problems.append(f"GetCSVHeader is for pool {header_pool} but DescribeUserPool is for "
                            f"{pool.get('Id')}: read both from the same pool")
        if problems:
            raise ContractError("The pool description cannot be used:\n"
                                + "\n".join(f"  - {p}" for p in problems))
        return cls(
            user_pool_id=str(pool_id),
            pool_name=str(pool.get("Name") or ""),
            csv_header=tuple(header_raw),
            attributes=MappingProxyType(attributes),
            auto_verified=frozenset(pool.get("AutoVerifiedAttributes") or ()),
            alias_attributes=frozenset(pool.get("AliasAttributes") or ()),
            username_attributes=frozenset(pool.get("UsernameAttributes") or ()),
            mfa=str(mfa),
            case_sensitive=bool(case_sensitive),
            _csv_header_response=_jsonable(dict(csv_header_response)),
            _describe_response=_jsonable(dict(describe_user_pool_response)),
        )

    # ---------------------------------------------------------------- queries
    def spec(self, column: str) -> AttributeSpec | None:
        """The attribute spec of a header column (standard defaults when the response omits it)."""
        if column in self.attributes:
            return self.attributes[column]
        if column.startswith(("cognito:", "custom:", "dev:")):
            return None
        return standard_spec(column)

    @property
    def auto_verified_flags(self) -> tuple[str, ...]:
        """The ``*_verified`` header columns of the attributes the pool auto-verifies: each user needs one
        of them true (fact 5)."""
        return tuple(VERIFIED_FLAG[a] for a in sorted(self.auto_verified)
                     if a in VERIFIED_FLAG and VERIFIED_FLAG[a] in self.csv_header)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The header columns the pool requires a value in (its schema's ``Required``; the username is
        required of every row anyway)."""
        return tuple(c for c in self.csv_header if (spec := self.spec(c)) is not None and spec.required)

    @property
    def fingerprint(self) -> str:
        """sha256 over the rule-relevant fields: changes iff the rules a row must meet change."""
        rules = {
            "csv_header": list(self.csv_header),
            "attributes": [self.attributes[k].as_dict() for k in sorted(self.attributes)],
            "auto_verified": sorted(self.auto_verified),
            "alias_attributes": sorted(self.alias_attributes),
            "username_attributes": sorted(self.username_attributes),
            "mfa": self.mfa,
            "case_sensitive": self.case_sensitive,
        }
        blob = json.dumps(rules, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def problems(self) -> list[str]:
        """Pool-level problems that stop an import (every one, not just the first)."""
        out: list[str] = []
        where = f"pool {self.user_pool_id}" + (f" ({self.pool_name})" if self.pool_name else "")
        if not self.auto_verified:
            out.append(f"{where} auto-verifies neither email nor phone_number: Cognito will not start an "
                       "import job (fact 5); turn on auto-verification of email or phone_number")
        if len(self.username_attributes) > 1:
            both = " and ".join(sorted(self.username_attributes))
            out.append(f"{where} lets users sign in with both {both}"
                       " as username; this tool (like AWS's reference importer) supports one username "
                       "attribute (fact 16)")
        if USERNAME not in self.csv_header:
            out.append(f"{where}: the CSV header from GetCSVHeader has no {USERNAME} column")
        seen: set[str] = set()
        for col in self.csv_header:
            if col in seen:
                out.append(f"{where}: the CSV header names column {col!r} twice")
            seen.add(col)
        for attr in sorted(self.auto_verified):
            flag = VERIFIED_FLAG.get(attr)
            if flag is None:
                out.append(f"{where} auto-verifies {attr!r}, which is neither email nor phone_number")
            elif flag not in self.csv_header or attr not in self.csv_header:
                out.append(f"{where} auto-verifies {attr} but the CSV header lacks {attr} or {flag}")
        for name, spec in sorted(self.attributes.items()):
            if spec.required and name != "sub" and not spec.developer_only and name not in self.csv_header:
                out.append(f"{where} requires attribute {name!r} but GetCSVHeader does not list it")
        return out

    # ---------------------------------------------------------------- snapshot
    def to_snapshot(self, path: str | Path) -> None:
        """Write both raw responses (datetimes as ISO strings) to ``path`` as JSON."""
        doc = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "fingerprint": self.fingerprint,
            "get_csv_header": self._csv_header_response,
            "describe_user_pool": self._describe_response,
        }
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                           encoding="utf-8")
            tmp.replace(p)
        except OSError as exc:
            tmp.unlink(missing_ok=True)   # half written on a full disk: not left beside the snapshot
            raise ContractError(f"Cannot write the pool contract snapshot {p}: {exc.strerror}; "
                                "check the directory exists, is writable and its disk has room") from exc

    @classmethod
    def from_snapshot(cls, path: str | Path) -> PoolContract:
        """Read a snapshot written by ``to_snapshot``; a missing or broken file is a ``ContractError``."""
        p = Path(path)
        redo = "re-read the pool (plan again with access to Cognito) to write a fresh snapshot"
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ContractError(f"Pool contract snapshot {p} does not exist; {redo}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ContractError(f"Pool contract snapshot {p} cannot be read ({exc}); {redo}") from exc
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"Pool contract snapshot {p} is not valid JSON (line {exc.lineno}, "
                                f"column {exc.colno}); {redo}") from exc
        if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
            raise ContractError(f"{p} is not a pool contract snapshot (no \"format\": "
                                f"\"{SNAPSHOT_FORMAT}\"); {redo}")
        if doc.get("version") != SNAPSHOT_VERSION:
            raise ContractError(f"Pool contract snapshot {p} has version {doc.get('version')!r}; this "
                                f"tool reads version {SNAPSHOT_VERSION}; {redo}")
        try:
            contract = cls.from_responses(doc.get("get_csv_header") or {},
                                          doc.get("describe_user_pool") or {})
        except ContractError as exc:
            raise ContractError(f"Pool contract snapshot {p} is incomplete: {exc.message}\n{redo}") from exc
        saved = doc.get("fingerprint")
        if saved is not None and saved != contract.fingerprint:
            raise ContractError(f"Pool contract snapshot {p} was edited: its fingerprint does not match its "
                                f"content; {redo}")
        return contract


# -------------------------------------------------------------------- helpers
def _parse_int(value: Any, what: str, problems: list[str]) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        problems.append(f"{what} is {value!r}, not an integer")
        return None


def _parse_attribute(entry: Any, problems: list[str]) -> AttributeSpec | None:
    if not isinstance(entry, Mapping) or not entry.get("Name"):
        problems.append(f"SchemaAttributes entry {entry!r} has no Name")
        return None
    name = str(entry["Name"])
    data_type = entry.get("AttributeDataType") or "String"
    if data_type not in _DATA_TYPES:
        problems.append(f"attribute {name!r} has AttributeDataType {data_type!r}; "
                        f"expected one of {_DATA_TYPES}")
    s = entry.get("StringAttributeConstraints") or {}
    n = entry.get("NumberAttributeConstraints") or {}
    return AttributeSpec(
        name=name,
        data_type=str(data_type),
        required=bool(entry.get("Required", False)),
        mutable=bool(entry.get("Mutable", True)),
        developer_only=bool(entry.get("DeveloperOnlyAttribute", False)) or name.startswith("dev:"),
        min_length=_parse_int(s.get("MinLength"), f"attribute {name!r} MinLength", problems),
        max_length=_parse_int(s.get("MaxLength"), f"attribute {name!r} MaxLength", problems),
        min_value=_parse_int(n.get("MinValue"), f"attribute {name!r} MinValue", problems),
        max_value=_parse_int(n.get("MaxValue"), f"attribute {name!r} MaxValue", problems),
    )


def _jsonable(obj: Any) -> Any:
    """A JSON-safe deep copy: datetimes as ISO strings, ResponseMetadata dropped."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items() if k != "ResponseMetadata"}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
