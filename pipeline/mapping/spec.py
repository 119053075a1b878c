"""Load a tenant's mapping (``mappings/default.yaml`` + ``mappings/tenants/<tenant>.yaml``) into frozen
objects, checking everything before a row flows and reporting every problem at once.

Each problem names the file, the key path (and line), and what to write instead, e.g.
``mappings/tenants/acme-jp.yaml: attributes.phone_numbr (line 7): unknown Cognito attribute
'phone_numbr'; did you mean 'phone_number'?``. The YAML format is documented in mappings/README.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import MappingError
from pipeline.mapping._yaml import Origins, Path_, deep_merge, load_file, plain, record_origins
from pipeline.mapping.checker import STANDARD_ATTRIBUTES, Checker, no_verified_flag
from pipeline.mapping.model import (
    META_COLUMNS,
    USERNAME,
    AttributeRule,
    DuplicatesPolicy,
    RowPolicy,
    Step,
    TenantMapping,
    UsernameRule,
)
from pipeline.mapping.model import suggest as _suggest
from pipeline.mapping.pool import check_username_fit
from pipeline.mapping.transforms import template_fields

__all__ = [
    "META_COLUMNS", "STANDARD_ATTRIBUTES", "USERNAME", "AttributeRule", "DuplicatesPolicy", "RowPolicy",
    "Step", "TenantMapping", "UsernameRule", "check_header", "check_source_columns", "list_tenants",
    "load_mapping", "source_column_refs", "unread_tenant_files",
]


# ---------------------------------------------------------------------------------------------- loading

def list_tenants(mappings_dir: Path) -> list[str]:
    """Tenants with a mapping file, sorted. Hidden files are none: an editor's lock (Emacs's
    ``.#acme-jp.yaml``) or a Mac's resource fork (``._acme-jp.yaml``) is not a tenant, nor is ``...yaml``,
    whose tenant ``..`` would put its runs beside the runs directory."""
    return sorted(p.stem for p in (Path(mappings_dir) / "tenants").glob("*.yaml") if not p.name.startswith("."))


def unread_tenant_files(mappings_dir: Path) -> list[Path]:
    """Files in ``tenants/`` that look like a tenant's mapping but are not read as one: ``acme.yml``,
    ``acme.YAML`` (only ``*.yaml`` is), which would leave that tenant's users out of a run of all tenants."""
    return sorted(p for p in (Path(mappings_dir) / "tenants").glob("*")
                  if not p.name.startswith(".") and p.suffix.lower() in (".yaml", ".yml") and p.suffix != ".yaml")


def load_mapping(mappings_dir: Path, tenant: str) -> TenantMapping:
    """Read, merge and check a tenant's mapping; raise ``MappingError`` listing every problem."""
    mappings_dir = Path(mappings_dir)
    base = mappings_dir.name
    default_label, tenant_label = f"{base}/default.yaml", f"{base}/tenants/{tenant}.yaml"
    tenant_path = mappings_dir / "tenants" / f"{tenant}.yaml"
    if not tenant_path.is_file():
        known = list_tenants(mappings_dir)
        raise MappingError(f"No mapping for tenant '{tenant}':", [
            f"{tenant_label}: missing tenant file; create it, or choose one of: "
            f"{', '.join(known) or '(none yet)'}{_suggest(tenant, known)}"], tenant=tenant)
    default = load_file(mappings_dir / "default.yaml", default_label)
    override = load_file(tenant_path, tenant_label)
    problems = default.problems + override.problems
    for loaded in (default, override):
        if loaded.data is not None and not isinstance(loaded.data, dict) and not loaded.problems:
            problems.append(f"{loaded.label}: the file must hold a mapping of keys "
                            f"(source:, attributes:, ...)")
            loaded.data = None
    if default.fatal or override.fatal:
        raise MappingError(f"The mapping of tenant '{tenant}' cannot be read:", problems, tenant=tenant)
    origins = Origins()
    record_origins(default.data or {}, default_label, origins)
    record_origins(override.data or {}, tenant_label, origins)
    merged = plain(deep_merge(default.data or {}, override.data or {}))
    checker = Checker(merged, origins, tenant, tenant_label)
    mapping = checker.build(files=(default_label, tenant_label))
    problems += checker.problems
    if problems:
        raise MappingError(f"The mapping of tenant '{tenant}' has {len(problems)} problem(s):", problems,
                           tenant=tenant)
    assert mapping is not None
    return mapping


# ------------------------------------------------------------------------------------------ the checks

def check_source_columns(m: TenantMapping, columns: Iterable[str]) -> None:
    """Every source column the mapping reads must be among ``columns`` (the query's result)."""
    have = list(columns)
    problems = []
    for path, column in source_column_refs(m):
        if column not in have:
            problems.append(f"{m.where(path)}: source column '{column}' is not in the result of "
                            f"{m.sql_file}; fix the name or add the column to the query"
                            f"{_suggest(column, have)} (the query returns: {', '.join(have)})")
    if problems:
        raise MappingError(f"The mapping of tenant '{m.tenant}' reads columns the query does not return:",
                           problems, tenant=m.tenant)


def source_column_refs(m: TenantMapping) -> list[tuple[Path_, str]]:
    """(key path, source column) for every column the mapping reads."""
    refs: list[tuple[Path_, str]] = [(("source", "primary_key"), m.primary_key)]
    u = m.username
    if u.column:
        refs.append((("username", "column"), u.column))
    if u.template:
        refs += [(("username", "template"), c) for c in template_fields(u.template) if c != "tenant"]
    for r in m.attributes:
        key = "from" if r.source is not None else "template"
        refs += [(("attributes", r.target, key), c) for c in r.columns]
    for name, pol in (("soft_deleted", m.soft_deleted), ("disabled", m.disabled)):
        if pol is not None:
            refs.append((("policies", name, "column"), pol.column))
    return refs


_MFA_ENABLED = "cognito:mfa_enabled"


def check_header(m: TenantMapping, csv_header: list[str], required: Iterable[str] = (),
                 verified_flags: Sequence[str] = (), sign_in: Mapping[str, Any] | None = None,
                 mfa: str | None = None) -> None:
    """The mapping against the pool's contract, before any row is read.

    Every column the mapping produces must be in the pool's CSV header (GetCSVHeader). And what would
    have every user rejected is a mistake of the mapping, not of the data: an attribute the pool
    requires (``required``) that the mapping never fills; no flag of what the pool auto-verifies
    (``verified_flags``, one of which must be true per user); a username strategy that does not suit
    how the pool signs users in (``sign_in``: its UsernameAttributes and AliasAttributes); a constant
    ``cognito:mfa_enabled`` against the pool's MFA setting (``mfa``). Mappings of local pools meet some
    of these at load time, from ``pool.local``; here they hold for any pool, one given by id included.
    """
    problems = []
    if sign_in is not None:
        check_username_fit(dict(sign_in), m.username.strategy, ("username",),
                           lambda path, text: problems.append(f"{m.where(path)}: {text}"))
    must = {"ON": "true", "OFF": "false"}.get(mfa or "")
    for rule in m.attributes:
        if (rule.target == _MFA_ENABLED and must and rule.constant is not None and not rule.steps
                and rule.constant.strip() not in ("", must)):
            problems.append(f"{m.where(('attributes', _MFA_ENABLED))}: the pool's MFA is {mfa}, so "
                            f"{_MFA_ENABLED} must be {must} or empty, but the mapping sets \"{rule.constant}\" "
                            f"for every user, so every user would be rejected; write {{constant: \"{must}\"}} "
                            "or remove the rule")
    if verified_flags and not set(verified_flags) & set(m.targets):
        problems.append(f"{m.where(('attributes',))}: "
                        + no_verified_flag([f.removesuffix("_verified") for f in verified_flags]))
    for attr in required:
        if attr != USERNAME and attr not in m.targets:
            problems.append(f"{m.where(('attributes',))}: the pool requires attribute '{attr}' but the mapping "
                            f"fills no such column, so every user would be rejected; map a source column to "
                            f"it (attributes: {{{attr}: {{from: <column>}}}})")
    for target in m.targets:
        if target not in csv_header:
            path: Path_ = ("username",) if target == USERNAME else ("attributes", target)
            hint = " add it to the pool's schema (pool.local.Schema) or remove the rule" \
                if target.startswith("custom:") else " remove the rule"
            problems.append(f"{m.where(path)}: unknown attribute for this pool: its CSV header has no "
                            f"column '{target}'{_suggest(target, csv_header)};{hint}")
    if problems:
        raise MappingError(f"The mapping of tenant '{m.tenant}' does not fit its pool:", problems,
                           tenant=m.tenant)
