"""The walk over a merged mapping: every problem collected, the frozen objects built.

Messages follow one form: ``<file>: <key.path> (line n): <what is wrong>; <what to write>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import string
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import phonenumbers

from pipeline.mapping import pool as poolcheck
from pipeline.mapping._yaml import Origins, Path_, reads_otherwise
from pipeline.mapping.model import (
    USERNAME,
    AttributeRule,
    DuplicatesPolicy,
    RowPolicy,
    Step,
    TenantMapping,
    UsernameRule,
    where,
)
from pipeline.mapping.model import suggest as _suggest
from pipeline.mapping.transforms import ARGUMENTS, EPOCH_UNITS, template_fields


def _time_zone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (ZoneInfo refuses paths and "")."""
    if not isinstance(name, str):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


STANDARD_ATTRIBUTES = (
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile",
    "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo", "locale",
    "phone_number", "phone_number_verified", "address", "updated_at", "cognito:mfa_enabled",
    "cognito:username",
)
_FLAGS = ("email_verified", "phone_number_verified", "cognito:mfa_enabled")   # true/false attributes
_CUSTOM = re.compile(r"custom:\S{1,20}")
_NOT_IMPORTABLE = {"sub": "Cognito assigns 'sub' itself", "identities": "'identities' is set by federation"}
_SEPARATORS = re.compile(r"[\s,]+")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STRATEGIES = ("column", "email", "phone", "legacy_id", "template")
ACTIONS = ("reject", "import")
NEWLINES = ("replace", "reject")
INVALID_OPTIONAL = ("reject", "drop")
KEEP = ("first", "latest", "none")
MAX_CHUNK_ROWS = 500_000           # users per import file (fact 12)

_TOP = ("description", "tenant", "source", "default_region", "filters", "pool", "username",
        "attributes", "policies", "report", "load")
_SECTIONS = {
    ("source",): ("query", "params", "primary_key", "partition_rows"),
    ("pool",): ("user_pool_id", "local"),
    ("username",): ("strategy", "column", "template", "transform"),
    ("policies",): ("soft_deleted", "disabled", "newlines", "duplicates", "invalid_optional"),
    ("policies", "soft_deleted"): ("column", "action"),
    ("policies", "disabled"): ("column", "active_values", "action"),
    ("policies", "duplicates"): ("keys", "keep", "order_by"),
    ("report",): ("reject_threshold",),
    ("load",): ("chunk_rows", "canary_rows"),
}
_RULE_KEYS = ("from", "template", "constant", "transform")


def no_verified_flag(auto_verified: Sequence[str]) -> str:
    """The problem of a mapping that fills no ``*_verified`` flag of the attributes its pool auto-verifies."""
    return (f"the pool auto-verifies {' and '.join(auto_verified)}, so every user needs "
            f"{' or '.join(a + '_verified' for a in auto_verified)} true (import-rules fact 5); add "
            f"attributes.{auto_verified[0]}_verified")


class Checker:
    """Walks the merged mapping once, collecting problems and building the frozen objects."""

    def __init__(self, data: dict[str, Any], origins: Origins, tenant: str, tenant_label: str) -> None:
        self.data, self.origins, self.tenant, self.fallback = data, origins, tenant, tenant_label
        self.problems: list[str] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(f"{where(self.origins, path, self.fallback)}: {message}")

    def section(self, path: Path_, allowed: tuple[str, ...], required: bool = False) -> dict[str, Any]:
        value: Any = self.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            if required:
                self.problem(path, f"required section missing; add {path[-1]}: with {', '.join(allowed)}")
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping with keys {', '.join(allowed)}")
            return {}
        self.unknown_keys(path, value, allowed)
        return value

    def unknown_keys(self, path: Path_, value: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.problem((*path, key), f"unknown key '{key}'{_suggest(key, allowed)} "
                             f"(allowed here: {', '.join(allowed)})")

    def text(self, path: Path_, value: Any, required: bool = True, example: str = "") -> str | None:
        if value is None:
            if required:
                self.problem(path, f"required; write e.g. {path[-1]}: {example}")
            return None
        if isinstance(value, bool):
            self.problem(path, f"YAML reads unquoted yes/no/on/off/true/false (and NO, Norway) as a "
                         f"boolean; put the value in quotes, e.g. {path[-1]}: \"{example}\"")
            return None
        if not isinstance(value, str) or not value:
            self.problem(path, f"must be a non-empty text; write e.g. {path[-1]}: {example}")
            return None
        return value

    def integer(self, path: Path_, value: Any, default: int, low: int, high: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(path, f"must be a whole number from {low} to {high}; got {value!r}")
            return default
        return value

    def choice(self, path: Path_, value: Any, choices: tuple[str, ...], default: str) -> str:
        if value is None:
            return default
        if isinstance(value, bool):   # newlines: no
            self.problem(path, f"YAML reads unquoted yes/no/on/off/true/false as a boolean ({str(value).lower()} "
                         f"here), which is not one of the choices; write one of: {', '.join(choices)}")
            return default
        if value not in choices:
            self.problem(path, f"'{value}' is not valid; write one of: {', '.join(choices)}"
                         f"{_suggest(str(value), choices)}")
            return default
        return str(value)

    # ------------------------------------------------------------------------------------------ build

    def _section(self, key: str) -> dict[str, Any]:
        """A top-level mapping section, or {} when it is absent or not a mapping (reported elsewhere)."""
        value = self.data.get(key)
        return value if isinstance(value, dict) else {}

    def build(self, files: tuple[str, ...]) -> TenantMapping | None:
        self.unknown_keys((), self.data, _TOP)
        for path, allowed in _SECTIONS.items():
            if len(path) == 1 or isinstance(self.data.get(path[0]), dict):
                self.section(path, allowed, required=path in (("source",), ("username",)))
        tenant = self.data.get("tenant", self.tenant)
        if isinstance(tenant, int) and not isinstance(tenant, bool):
            tenant = str(tenant)         # tenant: 1001 in 1001.yaml: YAML reads a number
        if tenant != self.tenant:
            self.problem(("tenant",), f"'{tenant}' does not match the file name; write tenant: {self.tenant}")
        if _SEPARATORS.search(self.tenant):   # --tenant "a b" and TENANT=a,b read both as separators
            self.problem(("tenant",), f"the file name '{self.tenant}' holds a space or a comma, which --tenant "
                         "and TENANT= read as separators between tenants; rename the file, e.g. "
                         f"{_SEPARATORS.sub('-', self.tenant)}.yaml")
        region = self.region()
        has_source = isinstance(self.data.get("source"), dict)   # a missing section is reported once
        src = self.data["source"] if has_source else {}
        sql_file = self.sql_file(src.get("query"), required=has_source)
        primary_key = self.text(("source", "primary_key"), src.get("primary_key"), required=has_source,
                                example="id")
        partition_rows = self.integer(("source", "partition_rows"), src.get("partition_rows"),
                                      50_000, 1, 10_000_000)
        params = self.params(src.get("params"))
        attributes = self.attributes(region)
        targets = {r.target for r in attributes}
        username = self.username(targets, region)
        self.pool(targets, username)
        policies = self._section("policies")
        soft = self.row_policy("soft_deleted", policies.get("soft_deleted"))
        disabled = self.row_policy("disabled", policies.get("disabled"))
        newlines = self.choice(("policies", "newlines"), policies.get("newlines"), NEWLINES, "replace")
        duplicates = self.duplicates(policies.get("duplicates"), targets)
        invalid_optional = self.choice(("policies", "invalid_optional"), policies.get("invalid_optional"),
                                       INVALID_OPTIONAL, "reject")
        report = self._section("report")
        threshold = report.get("reject_threshold", 0.2)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            self.problem(("report", "reject_threshold"), f"must be a fraction from 0 to 1 (0.2 = stop when "
                         f"over 20% of rows are rejected); got {threshold!r}")
            threshold = 0.2
        load = self._section("load")
        chunk_rows = self.integer(("load", "chunk_rows"), load.get("chunk_rows"), MAX_CHUNK_ROWS, 1,
                                  MAX_CHUNK_ROWS)
        canary_rows = self.integer(("load", "canary_rows"), load.get("canary_rows"), 100, 0, chunk_rows)
        if self.problems or sql_file is None or primary_key is None or username is None:
            return None
        merged_json = json.dumps(self.data, ensure_ascii=False, default=str)
        canonical = json.dumps(self.data, sort_keys=True, ensure_ascii=False, default=str)
        return TenantMapping(
            tenant=self.tenant, sql_file=sql_file, primary_key=primary_key, default_region=region,
            partition_rows=partition_rows, username=username, attributes=attributes, soft_deleted=soft,
            disabled=disabled, newlines=newlines, duplicates=duplicates, invalid_optional=invalid_optional,
            reject_threshold=float(threshold),
            chunk_rows=chunk_rows, canary_rows=canary_rows,
            digest=hashlib.sha256(canonical.encode()).hexdigest(), files=files,
            _params=tuple(params.items()), _merged_json=merged_json, _origins=self.origins)

    def region(self) -> str | None:
        value = self.data.get("default_region")
        if value is None:
            return None
        region = self.text(("default_region",), value, example="NO" if value is False else "JP")
        if region is None:
            return None
        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            self.problem(("default_region",), f"'{region}' is not an ISO 3166 region code known to "
                         f"libphonenumber; write e.g. JP, US, DE"
                         f"{_suggest(region.upper(), phonenumbers.SUPPORTED_REGIONS)}")
            return None
        return region.upper()

    def sql_file(self, value: Any, required: bool) -> str | None:
        name = self.text(("source", "query"), value, required=required, example="users.sql")
        if name is None:
            return None
        if not name.endswith(".sql") or name.startswith("/") or ".." in Path(name).parts:
            self.problem(("source", "query"), f"'{name}' must name a .sql file inside the SQL directory, "
                         f"e.g. query: users.sql")
            return None
        return name

    def params(self, value: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for section, raw in (("source", value), (None, self.data.get("filters"))):
            path: Path_ = ("source", "params") if section else ("filters",)
            if raw is None:
                continue
            if not isinstance(raw, dict):
                self.problem(path, "must be a mapping of bound parameter names to values, "
                             "e.g. {tenant: \"{tenant}\"}")
                continue
            for name, v in raw.items():
                here = (*path, name)
                if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
                    self.problem(here, f"'{name}' is not a bound-parameter name; use letters, digits and _")
                    continue
                if name in params:
                    self.problem(here, f"parameter '{name}' is already set by source.params; rename one")
                    continue
                params[name] = self.param_value(here, v)
        return params

    def param_value(self, path: Path_, value: Any, in_list: bool = False) -> Any:
        if isinstance(value, list):
            if in_list:     # role IN ((a, b)) is no SQL either
                self.problem(path, "a list inside a list: a parameter's list holds texts, numbers or booleans; "
                             "write them in one list, e.g. [admin, staff]")
                return None
            if not value:   # role IN () is no SQL, and would select no user
                self.problem(path, "an empty list matches no row; give it at least one value, or remove it")
            return [self.param_value((*path, i), v, in_list=True) for i, v in enumerate(value)]
        if isinstance(value, dict):
            self.problem(path, "a parameter value is a text, a number, a boolean or a list of them")
            return None
        if isinstance(value, str):
            return self.fill_tenant(path, value)
        # a plain number for the driver: PyMySQL escapes what is not exactly an int as text, so the
        # loader's WrittenInt (a number with the text it was written as) made LIMIT :n into LIMIT '5'
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return value

    def fill_tenant(self, path: Path_, value: str) -> str:
        try:
            fields = template_fields(value)
        except ValueError as exc:
            self.problem(path, f"bad braces in '{value}' ({exc}); write {{{{ and }}}} for literal braces")
            return value
        others = [f for f in fields if f != "tenant"]
        if others:
            self.problem(path, f"only {{tenant}} can be filled in here, not {{{others[0]}}}; "
                         f"use a template: rule to combine columns")
            return value
        return value.replace("{tenant}", self.tenant).replace("{{", "{").replace("}}", "}")

    # ---------------------------------------------------------------------------------- attributes

    def attributes(self, region: str | None) -> tuple[AttributeRule, ...]:
        raw = self.data.get("attributes")
        if raw is None:
            self.problem(("attributes",), "required section missing; add attributes: with one rule per "
                         "Cognito column, e.g. email: {from: email, transform: [trim, lower]}")
            return ()
        if not isinstance(raw, dict):
            self.problem(("attributes",), "must be a mapping of Cognito attribute to rule")
            return ()
        rules = []
        for target, rule in raw.items():
            target_ok = self.target_name(target)
            built = self.rule(("attributes", target), rule, region)
            if target_ok and built is not None:
                rules.append(AttributeRule(target=target, **built))
        return tuple(rules)

    def target_name(self, target: Any) -> bool:
        path: Path_ = ("attributes", target)
        if target == USERNAME:
            self.problem(path, "duplicate target: cognito:username is produced by the username: section; "
                         "remove this rule and set username: {strategy: ...} instead")
            return False
        if isinstance(target, str) and (target in STANDARD_ATTRIBUTES or _CUSTOM.fullmatch(target)):
            return True
        if target in _NOT_IMPORTABLE:
            self.problem(path, f"{_NOT_IMPORTABLE[target]} and it cannot be imported; remove this rule")
        elif isinstance(target, str) and target.startswith("custom:"):
            self.problem(path, f"custom attribute names have 1-20 characters and no spaces; "
                         f"'{target[7:]}' does not fit")
        else:
            hint = _suggest(str(target), STANDARD_ATTRIBUTES[:-1]) or \
                "; write a standard attribute or custom:<name>"
            self.problem(path, f"unknown Cognito attribute '{target}'{hint}")
        return False

    def rule(self, path: Path_, rule: Any, region: str | None) -> dict[str, Any] | None:
        if not isinstance(rule, dict):
            self.problem(path, "a rule is a mapping: {from: column}, {template: \"{a} {b}\"} or "
                         "{constant: value}, with an optional transform:")
            return None
        self.unknown_keys(path, rule, _RULE_KEYS)
        kinds = [k for k in ("from", "template", "constant") if k in rule]
        if len(kinds) != 1:
            self.problem(path, "a rule needs exactly one of from:, template:, constant: "
                         + (f"(found {', '.join(kinds)})" if kinds else "(found none)"))
            return None
        steps = self.steps((*path, "transform"), rule.get("transform"), region)
        kind = kinds[0]
        value = rule[kind]
        if kind == "from":
            column = self.text((*path, "from"), value, example="email")
            return None if column is None else {"source": column, "steps": steps}
        if kind == "template":
            template = self.template((*path, "template"), value)
            return None if template is None else {"template": template, "steps": steps}
        if isinstance(value, bool):
            if path[-1] in STANDARD_ATTRIBUTES and path[-1] not in _FLAGS:   # locale: {constant: no} is Norwegian
                self.problem((*path, "constant"), "YAML reads unquoted yes/no/on/off/true/false (and NO, Norway) "
                             f"as a boolean, and {path[-1]} is not a flag; put the value in quotes, e.g. "
                             "constant: \"no\"")
                return None
            value = "true" if value else "false"
        if isinstance(value, dt.date):   # constant: 2024-01-01 (a datetime is a date too)
            self.problem((*path, "constant"), f"YAML reads {value.isoformat()} as a date, not as text; put it "
                         f"in quotes (constant: \"{value.isoformat()}\") to keep it as written")
            return None
        if not isinstance(value, str | int | float):
            self.problem((*path, "constant"), "must be a text or a number")
            return None
        if (written := reads_otherwise(value)) is not None:
            self.problem((*path, "constant"), f"YAML reads {written} as the number {value}, so every user "
                         f"would get \"{value}\"; put it in quotes (\"{written}\") to keep it as written")
            return None
        return {"constant": self.fill_tenant((*path, "constant"), str(value)), "steps": steps}

    def template(self, path: Path_, value: Any) -> str | None:
        template = self.text(path, value, example='"{first_name} {last_name}"')
        if template is None:
            return None
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            self.problem(path, f"bad braces in '{template}' ({exc}); write {{{{ and }}}} for literal braces")
            return None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not _PARAM_NAME.fullmatch(name) or spec or conversion:
                self.problem(path, f"'{{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}}' is not a plain column placeholder; "
                             f"write {{column_name}}")
                return None
        if not any(name for _, name, _, _ in parsed):
            self.problem(path, "the template names no column; use constant: for a fixed value")
            return None
        return template

    def steps(self, path: Path_, raw: Any, region: str | None) -> tuple[Step, ...]:
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        steps = []
        for i, item in enumerate(items):
            here = (*path, i) if isinstance(raw, list) else path
            args: Any
            if isinstance(item, str):
                name, args = item, {}
            elif isinstance(item, dict) and len(item) == 1:
                name, args = next(iter(item.items()))
                args = {} if args is None else args
            else:
                self.problem(here, "a transform is a name (trim) or a one-key mapping with its arguments "
                             "({boolean: {default: false}})")
                continue
            if name not in ARGUMENTS:
                self.problem(here, f"unknown transform '{name}'{_suggest(str(name), ARGUMENTS)} "
                             f"(transforms: {', '.join(ARGUMENTS)})")
                continue
            if not isinstance(args, dict):
                self.problem(here, f"the arguments of {name} are a mapping, e.g. "
                             f"{{{name}: {{{next(iter(ARGUMENTS[name]), 'arg')}: ...}}}}"
                             if ARGUMENTS[name] else f"{name} takes no arguments; write just {name}")
                continue
            step = self.step_args(here, name, args, region)
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def step_args(self, path: Path_, name: str, args: dict[str, Any], region: str | None) -> Step | None:
        allowed = ARGUMENTS[name]
        ok = True
        for key in args:
            if key not in allowed:
                ok = False
                self.problem(path, f"transform {name} has no argument '{key}'"
                             + (f"; it takes: {', '.join(allowed)}{_suggest(str(key), allowed)}" if allowed
                                else "; it takes none"))
        if name == "phone":
            chosen = args.get("region", region)
            if chosen is None and "default_region" in self.data:
                ok = False                          # the bad default_region is reported already
            elif not isinstance(chosen, str) or chosen.upper() not in phonenumbers.SUPPORTED_REGIONS:
                ok = False
                self.problem(path, "transform phone needs a region: set default_region: JP (or US, DE, ...) "
                             "at the top, or write {phone: {region: JP}}"
                             if chosen is None else f"'{chosen}' is not a region code; write e.g. JP")
            else:
                args = {"region": chosen.upper()}
        if name == "boolean" and "default" in args:
            d = args["default"]
            if isinstance(d, str) and d.lower() in ("true", "false"):
                args = {"default": d.lower() == "true"}
            elif d is not None and not isinstance(d, bool):
                ok = False
                self.problem(path, f"boolean default must be true, false or null (no value); got {d!r}")
        if name == "epoch" and "unit" in args and (not isinstance(args["unit"], str)
                                                   or args["unit"] not in EPOCH_UNITS):
            ok = False
            self.problem(path, f"epoch unit must be s, ms or us (seconds, milliseconds, microseconds); "
                         f"got {args['unit']!r}")
        if name in ("epoch", "date") and "zone" in args and not _time_zone(args["zone"]):
            ok = False
            self.problem(path, f"'{args['zone']}' is not a time zone; write an IANA name such as Europe/Berlin "
                         "or Asia/Tokyo (the zone the legacy application's local times are in)")
        return Step(name, tuple(sorted(args.items()))) if ok else None

    # -------------------------------------------------------------------------------------- username

    def username(self, targets: set[str], region: str | None) -> UsernameRule | None:
        raw = self.data.get("username")
        if not isinstance(raw, dict):
            return None
        path: Path_ = ("username",)
        strategy = raw.get("strategy")
        if strategy not in STRATEGIES:
            self.problem((*path, "strategy"), f"'{strategy}' is not a username strategy; write one of: "
                         f"{', '.join(STRATEGIES)}{_suggest(str(strategy), STRATEGIES)}")
            return None
        needs = {"column": "column", "template": "template"}
        for key in ("column", "template"):
            if key in raw and needs.get(strategy) != key:
                self.problem((*path, key), f"'{key}:' is not used by strategy {strategy}; remove it")
        column = template = None
        if strategy == "column":
            column = self.text((*path, "column"), raw.get("column"), example="login")
        elif strategy == "template":
            template = self.template((*path, "template"), raw.get("template"))
        for strat, attr in (("email", "email"), ("phone", "phone_number")):
            if strategy == strat and attr not in targets:
                self.problem((*path, "strategy"), f"strategy {strat} copies the mapped {attr}, but "
                             f"attributes has no {attr} rule; add attributes.{attr}")
        steps = self.steps((*path, "transform"), raw.get("transform", ["trim"]), region)
        if (strategy in ("column", "template") and column is None and template is None):
            return None
        return UsernameRule(strategy=strategy, column=column, template=template, steps=steps)

    # ------------------------------------------------------------------------------------------ pool

    def pool(self, targets: set[str], username: UsernameRule | None) -> None:
        raw = self.data.get("pool")
        if raw is None:
            self.problem(("pool",), "required section missing; add pool: with user_pool_id: (real AWS) "
                         "and/or local: (the CreateUserPool parameters of the local pool)")
            return
        if not isinstance(raw, dict):
            return
        pool_id = raw.get("user_pool_id")
        if pool_id is not None and (not isinstance(pool_id, str)
                                    or not re.fullmatch(r"[\w-]+_[0-9a-zA-Z]+", pool_id)):
            self.problem(("pool", "user_pool_id"), f"'{pool_id}' is not a user pool id; it looks like "
                         f"ap-northeast-1_AbCdEf123")
        local = raw.get("local")
        if local is None:
            if pool_id is None:
                self.problem(("pool",), "give user_pool_id: (real AWS) or local: (CreateUserPool "
                             "parameters), or both")
            return
        before = len(self.problems)
        poolcheck.check_local_pool(local, ("pool", "local"), self.problem, STANDARD_ATTRIBUTES, _suggest)
        if len(self.problems) > before or not isinstance(local, dict):
            return
        declared = poolcheck.custom_names(local)
        for target in sorted(t for t in targets if t.startswith("custom:") and t not in declared):
            self.problem(("attributes", target), f"the pool in pool.local.Schema declares no '{target}'; "
                         f"add {{Name: {target[7:]}, AttributeDataType: String}} to the Schema or remove "
                         f"the rule{_suggest(target, declared)}")
        auto = [a for a in local.get("AutoVerifiedAttributes") or [] if a in ("email", "phone_number")]
        if auto and targets and not any(f"{a}_verified" in targets for a in auto):
            self.problem(("attributes",), no_verified_flag(auto))
        if username is not None:
            poolcheck.check_username_fit(local, username.strategy, ("username",), self.problem)

    # -------------------------------------------------------------------------------------- policies

    def row_policy(self, name: str, raw: Any) -> RowPolicy | None:
        if not isinstance(raw, dict):
            return None
        path: Path_ = ("policies", name)
        column = self.text((*path, "column"), raw.get("column"),
                           example="deleted_at" if name == "soft_deleted" else "is_active")
        action = self.choice((*path, "action"), raw.get("action"), ACTIONS, "reject")
        active: tuple[str, ...] = ()
        if name == "disabled":
            values = raw.get("active_values")
            if (not isinstance(values, list) or not values
                    or any(isinstance(v, bool) or not isinstance(v, str | int) for v in values)):
                self.problem((*path, "active_values"), "must be a non-empty list of quoted values, e.g. "
                             "active_values: [\"1\", \"t\"] (unquoted yes/no/true/false are read as "
                             "booleans)")
            else:
                active = tuple(str(v) for v in values)
                for i, v in enumerate(values):
                    if (written := reads_otherwise(v)) is not None:
                        self.problem((*path, "active_values", i),
                                     f"YAML reads {written} as the number {v}, which is compared as \"{v}\"; "
                                     f"put it in quotes (\"{written}\") to compare what is written")
        return None if column is None else RowPolicy(column=column, action=action, active_values=active)

    def duplicates(self, raw: Any, targets: set[str]) -> DuplicatesPolicy:
        if not isinstance(raw, dict):
            return DuplicatesPolicy()
        path: Path_ = ("policies", "duplicates")
        keep = self.choice((*path, "keep"), raw.get("keep"), KEEP, "first")
        produced = {USERNAME, *targets}
        keys = []
        values = raw.get("keys")
        if not isinstance(values, list) or not values:
            self.problem((*path, "keys"),
                         "must be a list of columns, e.g. keys: [username, email, phone_number]")
            values = []
        for i, key in enumerate(values):
            column = USERNAME if key == "username" else key
            if not isinstance(column, str) or column not in produced:   # a list or mapping is no column
                self.problem((*path, "keys", i), f"'{key}' is not a column this mapping produces; use "
                             f"username or an attribute name{_suggest(str(key), ['username', *targets])}")
            else:
                keys.append(column)
        order_by = raw.get("order_by")
        if order_by is not None and (not isinstance(order_by, str)
                                     or order_by not in produced and order_by != "_legacy_id"):
            self.problem((*path, "order_by"), f"'{order_by}' is not a mapped column; order by an attribute "
                         f"this mapping produces (e.g. updated_at) or _legacy_id"
                         f"{_suggest(str(order_by), targets)}")
            order_by = None
        if keep == "latest" and order_by is None and "order_by" not in raw:
            self.problem((*path, "order_by"), "keep: latest needs order_by: (e.g. order_by: updated_at)")
        return DuplicatesPolicy(keys=tuple(keys), keep=keep, order_by=order_by)
