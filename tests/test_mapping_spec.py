"""Loading and checking mapping files: every kind of problem, merging, and the shipped tenants."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from pipeline.errors import MappingError
from pipeline.mapping import (
    DuplicatesPolicy,
    check_header,
    check_source_columns,
    list_tenants,
    load_mapping,
)

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"
TENANT_FILE = "mappings/tenants/acme-jp.yaml"
DEFAULT_FILE = "mappings/default.yaml"

DEFAULT = """\
source: {query: users.sql, params: {tenant: "{tenant}"}, primary_key: id}
default_region: JP
username: {strategy: column, column: login}
attributes:
  email: {from: email, transform: [trim, lower]}
  email_verified: {from: email_confirmed, transform: {boolean: {default: false}}}
  phone_number: {from: phone, transform: phone}
  locale: {from: locale, transform: trim}
  custom:legacy_id: {from: id}
policies:
  soft_deleted: {column: deleted_at, action: reject}
  disabled: {column: is_active, active_values: ["1"], action: reject}
  newlines: replace
  duplicates: {keys: [username, email], keep: first}
"""

POOL = """\
pool:
  local:
    PoolName: acme
    AliasAttributes: [email]
    AutoVerifiedAttributes: [email]
    Schema: [{Name: legacy_id, AttributeDataType: String}]
"""


def write(tmp_path: Path, tenant: str = POOL, default: str | None = DEFAULT, name: str = "acme-jp") -> Path:
    root = tmp_path / "mappings"
    (root / "tenants").mkdir(parents=True, exist_ok=True)
    if default is not None:
        (root / "default.yaml").write_text(textwrap.dedent(default), encoding="utf-8")
    (root / "tenants" / f"{name}.yaml").write_text(textwrap.dedent(tenant), encoding="utf-8")
    return root


def problems_of(root: Path, tenant: str = "acme-jp") -> list[str]:
    with pytest.raises(MappingError) as info:
        load_mapping(root, tenant)
    assert info.value.problems, "a MappingError always lists its problems"
    return info.value.problems


def one(problems: list[str], *needles: str) -> str:
    """The single problem containing every needle."""
    hits = [p for p in problems if all(n in p for n in needles)]
    assert len(hits) == 1, f"expected one problem with {needles}, got:\n" + "\n".join(problems)
    return hits[0]


# ------------------------------------------------------------------------------------ shipped files

@pytest.mark.parametrize("tenant", ["acme-jp", "globex-us", "initech-de"])
def test_shipped_tenants_load_cleanly(tenant: str) -> None:
    m = load_mapping(SHIPPED, tenant)
    assert m.tenant == tenant
    assert m.sql_file == "users.sql"
    assert m.params == {"tenant": tenant}
    assert m.primary_key == "id"
    assert m.partition_rows == 50_000
    assert re.fullmatch(r"[0-9a-f]{64}", m.digest)
    assert m.reject_threshold == 0.5 and m.chunk_rows == 500_000 and m.canary_rows == 100
    assert isinstance(m.duplicates, DuplicatesPolicy) and m.duplicates.enabled
    assert m.duplicates.keys == ("cognito:username", "email", "phone_number")
    local = m.pool["local"]
    names = {a["Name"] for a in local["Schema"]}
    assert {"tenant_id", "legacy_id", "role"} <= names
    assert all(a["Mutable"] and "MaxLength" in a["StringAttributeConstraints"] for a in local["Schema"])
    assert "custom:legacy_id" in m.targets and m.targets[0] == "cognito:username"
    check_source_columns(m, ["id", "tenant_code", "login", "email", "email_confirmed", "phone",
                             "phone_confirmed", "first_name", "last_name", "birth_date", "locale", "role",
                             "is_active", "deleted_at", "created_at", "updated_at"])


def test_shipped_tenant_specifics() -> None:
    assert list_tenants(SHIPPED) == ["acme-jp", "globex-us", "initech-de"]
    acme, globex, initech = (load_mapping(SHIPPED, t) for t in list_tenants(SHIPPED))
    assert acme.default_region == "JP" and acme.pool["local"]["AliasAttributes"] == ["email"]
    assert acme.pool["local"]["AutoVerifiedAttributes"] == ["email"]
    assert acme.username.strategy == "column" and acme.username.column == "login"
    assert globex.default_region == "US" and globex.username.strategy == "email"
    assert globex.pool["local"]["UsernameAttributes"] == ["email"]
    assert globex.pool["local"]["UsernameConfiguration"] == {"CaseSensitive": False}
    assert globex.duplicates == DuplicatesPolicy(("cognito:username", "email", "phone_number"), "latest",
                                                 "updated_at")
    assert initech.default_region == "DE" and initech.username.strategy == "column"
    assert initech.pool["local"]["MfaConfiguration"] == "OPTIONAL"
    assert set(initech.pool["local"]["AutoVerifiedAttributes"]) == {"phone_number", "email"}
    assert not {"AliasAttributes", "UsernameAttributes"} & set(initech.pool["local"])
    assert len({acme.digest, globex.digest, initech.digest}) == 3


def test_hidden_files_are_not_tenants(tmp_path: Path) -> None:
    root = write(tmp_path)
    tenants = root / "tenants"
    (tenants / ".#acme-jp.yaml").symlink_to("dev@host.4711:1700000000")   # Emacs's lock while editing
    (tenants / "._acme-jp.yaml").write_bytes(b"\x00\x05\x16\x07Mac OS X")   # a Mac's resource fork
    (tenants / "...yaml").write_text(POOL, encoding="utf-8")                # tenant "..": runs beside runs/
    assert list_tenants(root) == ["acme-jp"]


def test_readme_example_loads(tmp_path: Path) -> None:
    text = (SHIPPED / "README.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    m = load_mapping(write(tmp_path, tenant="{}", default=example), "acme-jp")
    assert m.params == {"tenant": "acme-jp", "min_created": "2015-01-01"}
    assert m.pool["user_pool_id"] == "ap-northeast-1_AbCdEf123"
    assert "locale" not in m.targets


def test_mapping_is_frozen_and_hands_out_copies(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path), "acme-jp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.tenant = "other"  # type: ignore[misc]
    m.pool["local"]["PoolName"] = "changed"
    m.params["tenant"] = "changed"
    m.as_dict()["source"]["query"] = "changed.sql"
    assert m.pool["local"]["PoolName"] == "acme" and m.params["tenant"] == "acme-jp"
    assert m.as_dict()["source"]["query"] == "users.sql"


def test_digest_is_stable_and_follows_the_content(tmp_path: Path) -> None:
    root = write(tmp_path)
    first = load_mapping(root, "acme-jp").digest
    assert load_mapping(root, "acme-jp").digest == first
    write(tmp_path, tenant=POOL + "report: {reject_threshold: 0.5}\n")
    assert load_mapping(root, "acme-jp").digest != first


# ------------------------------------------------------------------------------------- deep merge

def test_override_replaces_a_rule_whole_and_null_removes_one(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant=POOL + """\
attributes:
  email: {template: "{login}@legacy.example"}
  locale: null
  nickname: {from: login}
"""), "acme-jp")
    rules = {r.target: r for r in m.attributes}
    assert rules["email"].template == "{login}@legacy.example"
    assert rules["email"].source is None and rules["email"].steps == ()   # nothing leaked from default
    assert "locale" not in rules and "nickname" in rules
    assert list(rules)[:3] == ["email", "email_verified", "phone_number"]  # default order kept


IDENTITY_POOL = POOL.replace("Schema: [{Name: legacy_id, AttributeDataType: String}]",
                             "Schema: [{Name: old_id, AttributeDataType: String}, "
                             "{Name: tenant, AttributeDataType: String}, {Name: kind, AttributeDataType: String}]")


@pytest.mark.parametrize(("attributes", "legacy_id", "tenant"), [
    ("""\
  nickname: {from: id}
  custom:old_id: {from: id, transform: trim}
  custom:kind: {constant: "legacy"}
  custom:tenant: {constant: "{tenant}"}
""", "custom:old_id", "custom:tenant"),          # a copy of the key, custom before standard; the tenant constant
    ("""\
  custom:kind: {template: "{id}-{tenant}"}
  custom:old_id: {template: "{id}"}
  custom:tenant: {template: "{tenant}"}
""", "custom:old_id", "custom:tenant"),          # a template of the key alone is a copy: before key + tenant
    ("""\
  custom:kind: {template: "{id}/{email}"}
  custom:old_id: {template: "legacy-{id}@{tenant}"}
  custom:tenant: {template: "org-{tenant}"}
""", "custom:old_id", "custom:tenant"),          # key and tenant with literals; another column: not
    ("""\
  custom:kind: {template: "{id}/{email}"}
  custom:tenant: {template: "{tenant} {email}"}
""", None, None),
])
def test_identity_attributes_are_the_ones_the_mapping_names(tmp_path: Path, attributes: str, legacy_id: str | None,
                                                            tenant: str | None) -> None:
    """The attributes that tell a user's own account from someone else's (at harvest) follow the mapping:
    the one copied from the primary key (a custom one before a standard one), else one templated from
    the key and the tenant alone, and the one that holds the tenant's name alone."""
    from pipeline.mapping.model import Identity

    assert load_mapping(write(tmp_path), "acme-jp").identity == Identity(
        email="email", legacy_id="custom:legacy_id", tenant=None)
    m = load_mapping(write(tmp_path, tenant=IDENTITY_POOL + "attributes:\n  custom:legacy_id: null\n" + attributes),
                     "acme-jp")
    assert m.identity == Identity(email="email", legacy_id=legacy_id, tenant=tenant)
    assert m.identity.attributes == tuple(a for a in ("email", legacy_id, tenant) if a)


def test_override_merges_policies_key_by_key_and_replaces_lists(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant=POOL + """\
policies:
  disabled: {action: import}
  duplicates: {keys: [email], keep: none}
  soft_deleted: null
"""), "acme-jp")
    assert m.disabled is not None
    assert (m.disabled.column, m.disabled.active_values, m.disabled.action) == ("is_active", ("1",), "import")
    assert m.duplicates == DuplicatesPolicy(("email",), "none", None)
    assert m.soft_deleted is None


def test_username_section_is_replaced_whole(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant="""\
username: {strategy: legacy_id}
pool: {user_pool_id: ap-northeast-1_AbC123}
"""), "acme-jp")
    assert m.username.strategy == "legacy_id" and m.username.column is None


def test_duplicates_null_turns_the_check_off(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant=POOL + "policies: {duplicates: null}\n"), "acme-jp")
    assert not m.duplicates.enabled


def test_filters_join_params_and_tenant_is_filled_in(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant=POOL + """\
filters: {since: "2020-01-01", roles: [admin, user], code: "{tenant}-x"}
"""), "acme-jp")
    assert m.params == {"tenant": "acme-jp", "since": "2020-01-01", "roles": ["admin", "user"],
                        "code": "acme-jp-x"}


# ------------------------------------------------------------------------- problems, one kind each

def test_unknown_cognito_attribute(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  phone_numbr: {from: phone}
"""))
    p = one(problems, "phone_numbr")
    assert p.startswith(f"{TENANT_FILE}: attributes.phone_numbr (line 8): ")
    assert p.endswith("unknown Cognito attribute 'phone_numbr'; did you mean 'phone_number'?")


def test_bad_custom_and_unimportable_attributes(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  custom:this_name_is_longer_than_twenty: {from: id}
  sub: {from: id}
"""))
    assert "1-20 characters" in one(problems, f"{TENANT_FILE}: attributes.custom:this_name_is_longer")
    assert "cannot be imported; remove this rule" in one(problems, f"{TENANT_FILE}: attributes.sub")


def test_missing_source_column(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path), "acme-jp")
    with pytest.raises(MappingError) as info:
        check_source_columns(m, ["id", "login", "emial", "email_confirmed", "phone", "locale", "is_active",
                                 "deleted_at"])
    (p,) = info.value.problems
    assert p.startswith(f"{DEFAULT_FILE}: attributes.email.from (line 5): source column 'email' is not in")
    assert "fix the name or add the column to the query; did you mean 'emial'?" in p


def test_duplicate_yaml_key_is_a_duplicate_target(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  email: {from: email}
  email: {from: login}
"""))
    p = one(problems, "duplicate")
    assert p == (f"{TENANT_FILE}: attributes.email (line 9): duplicate target: attribute 'email' has two "
                 f"rules (first at line 8); keep only one")


def test_duplicate_yaml_key_outside_attributes(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + "report: {reject_threshold: 0.1}\nreport: {}\n"))
    assert "duplicate key: 'report' is given twice (first at line 7)" in \
        one(problems, f"{TENANT_FILE}: report (line 8)")


def test_username_rule_in_attributes_is_a_duplicate_target(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + "attributes: {'cognito:username': {from: login}}\n"))
    p = one(problems, f"{TENANT_FILE}: attributes.cognito:username")
    assert "duplicate target" in p and "set username: {strategy: ...} instead" in p


def test_bad_transform_name(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  email: {from: email, transform: [trim, lowr]}
"""))
    p = one(problems, f"{TENANT_FILE}: attributes.email.transform[1] (line 8)")
    assert "unknown transform 'lowr'; did you mean 'lower'?" in p


def test_bad_transform_arguments(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  phone_number: {from: phone, transform: {phone: {regio: JP}}}
  email_verified: {from: email_confirmed, transform: {boolean: {default: maybe}}}
  locale: {from: locale, transform: {trim: {side: left}}}
  email: {from: email, transform: {phone: {region: QQ}}}
  custom:legacy_id: {from: id, transform: {lower: 3}}
  updated_at: {from: updated_at, transform: {epoch: {unit: millis}}}
  custom:joined: {from: created_at, transform: {epoch: {zone: Europe/Berln}}}
  birthdate: {from: birth_date, transform: {date: {zone: 9}}}
"""))
    assert "transform phone has no argument 'regio'; it takes: region; did you mean 'region'?" in \
        one(problems, f"{TENANT_FILE}: attributes.phone_number.transform")
    assert "boolean default must be true, false or null" in \
        one(problems, f"{TENANT_FILE}: attributes.email_verified.transform")
    assert "transform trim has no argument 'side'; it takes none" in \
        one(problems, f"{TENANT_FILE}: attributes.locale.transform")
    assert "'QQ' is not a region code" in one(problems, f"{TENANT_FILE}: attributes.email.transform")
    assert "lower takes no arguments; write just lower" in \
        one(problems, f"{TENANT_FILE}: attributes.custom:legacy_id.transform")
    assert "epoch unit must be s, ms or us (seconds, milliseconds, microseconds); got 'millis'" in \
        one(problems, f"{TENANT_FILE}: attributes.updated_at.transform")
    assert "'Europe/Berln' is not a time zone; write an IANA name such as Europe/Berlin" in \
        one(problems, f"{TENANT_FILE}: attributes.custom:joined.transform")
    assert "'9' is not a time zone" in one(problems, f"{TENANT_FILE}: attributes.birthdate.transform")


def test_phone_without_a_region(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, default=DEFAULT.replace("default_region: JP\n", "")))
    p = one(problems, f"{DEFAULT_FILE}: attributes.phone_number.transform")
    assert "set default_region: JP (or US, DE, ...) at the top, or write {phone: {region: JP}}" in p


def test_bad_rules(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  email: {form: email}
  birthdate: {from: birth_date, constant: x}
  name: {template: "{first_name:>10} {last_name}"}
  nickname: {constant: "{login}"}
  locale: trim
"""))
    assert "unknown key 'form'; did you mean 'from'?" in one(problems, "attributes.email.form")
    assert "exactly one of from:, template:, constant: (found none)" in \
        one(problems, "attributes.email (line 8)")
    assert "(found from, constant)" in one(problems, "attributes.birthdate")
    assert "not a plain column placeholder; write {column_name}" in one(problems, "attributes.name.template")
    assert "only {tenant} can be filled in here" in one(problems, "attributes.nickname.constant")
    assert "a rule is a mapping" in one(problems, "attributes.locale")


def test_bad_policy_values(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
policies:
  soft_deleted: {action: delete}
  disabled: {active_values: [yes]}
  newlines: keep
  duplicates: {keys: [usernme], keep: latest}
  invalid_optional: skip
"""))
    assert "'delete' is not valid; write one of: reject, import" in \
        one(problems, f"{TENANT_FILE}: policies.soft_deleted.action (line 8)")
    assert "unquoted yes/no/true/false are read as" in one(problems, "policies.disabled.active_values")
    assert "write one of: replace, reject" in one(problems, "policies.newlines")
    assert "'skip' is not valid; write one of: reject, drop" in one(problems, "policies.invalid_optional")
    assert "did you mean 'username'?" in one(problems, "policies.duplicates.keys[0]")
    assert "keep: latest needs order_by:" in one(problems, "policies.duplicates.order_by")


def test_values_yaml_reads_as_something_else_say_so(tmp_path: Path) -> None:
    """An unquoted no is YAML's false and an unquoted date is a date: the message says which, and how
    to write the value so that it is read as text."""
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  nickname: {constant: 2024-01-01}
policies:
  newlines: no
"""))
    assert 'YAML reads 2024-01-01 as a date, not as text; put it in quotes (constant: "2024-01-01")' in \
        one(problems, "attributes.nickname.constant")
    assert "as a boolean (false here), which is not one of the choices; write one of: replace, reject" in \
        one(problems, "policies.newlines")


def test_duplicates_order_by_must_be_a_mapped_column(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
policies: {duplicates: {keep: latest, order_by: updated}}
"""))
    assert "'updated' is not a mapped column" in one(problems, "policies.duplicates.order_by")


def test_a_list_or_mapping_where_a_name_belongs_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    # each ended in "TypeError: unhashable type" (a traceback naming no file) before any problem was shown
    pool = POOL.replace("AutoVerifiedAttributes: [email]", "AutoVerifiedAttributes: [[email]]")
    problems = problems_of(write(tmp_path, tenant=pool + """\
attributes: {updated_at: {from: updated_at, transform: {epoch: {unit: [ms]}}}}
policies: {duplicates: {keys: [{email: first}], keep: latest, order_by: [updated_at]}}
"""))
    assert "epoch unit must be s, ms or us" in one(problems, f"{TENANT_FILE}: attributes.updated_at.transform")
    assert "is not a column this mapping produces; use username or an attribute name" in one(
        problems, f"{TENANT_FILE}: policies.duplicates.keys[0]")
    assert "did you mean 'updated_at'?" in one(problems, f"{TENANT_FILE}: policies.duplicates.order_by")
    assert "must be a list drawn from" in one(problems, f"{TENANT_FILE}: pool.local.AutoVerifiedAttributes",
                                              "must be a list")


def test_a_misspelt_schema_constraint_is_named_at_load(tmp_path: Path) -> None:
    # CreateUserPool refused it only when the plan created the pool, with a botocore traceback
    pool = POOL.replace("{Name: legacy_id, AttributeDataType: String}",
                        "{Name: legacy_id, AttributeDataType: String, StringAttributeConstraints: {MaxLenght: \"64\"},"
                        " NumberAttributeConstraints: {MinValue: \"0\", Max: \"9\"}}")
    problems = problems_of(write(tmp_path, tenant=pool))
    assert "'MaxLenght' is not a StringAttributeConstraints field; did you mean 'MaxLength'?" in one(
        problems, f"{TENANT_FILE}: pool.local.Schema[0].StringAttributeConstraints.MaxLenght (line 6)")
    assert "'Max' is not a NumberAttributeConstraints field" in one(problems, "NumberAttributeConstraints.Max ")
    assert len(problems) == 2


def test_a_control_character_or_runaway_nesting_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    # a stray NUL or ESC ended in yaml.reader.ReaderError, deep nesting in RecursionError, both tracebacks
    root = write(tmp_path, tenant=POOL + "description: Acme\x1b[0m\n")
    problems = problems_of(root)
    assert problems == [f"{TENANT_FILE} (line 7, column 18): the character U+001B is not allowed in a YAML file; "
                        "remove it (write the file as plain text)"]
    (root / "tenants" / "acme-jp.yaml").write_text(POOL + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply to read" in one(problems_of(root), f"{TENANT_FILE}: bad YAML syntax")


def test_unknown_keys_anywhere(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant="""\
sorce: {}
source: {primry_key: id}
pool:
  local:
    PoolName: acme
    PoolNme: acme
    AutoVerifiedAttributes: [email]
    Schema: [{Name: legacy_id, AttributeDataType: String, Mutabel: true}]
  region: x
policies: {soft_deleted: {colum: deleted_at}}
load: {canary: 5}
"""))
    assert "unknown key 'sorce'; did you mean 'source'?" in one(problems, f"{TENANT_FILE}: sorce (line 1)")
    assert "did you mean 'primary_key'?" in one(problems, f"{TENANT_FILE}: source.primry_key (line 2)")
    assert "not a CreateUserPool parameter; did you mean 'PoolName'?" in one(problems, "pool.local.PoolNme")
    assert "did you mean 'Mutable'?" in one(problems, "pool.local.Schema[0].Mutabel")
    assert "unknown key 'region'" in one(problems, "pool.region")
    assert "did you mean 'column'?" in one(problems, "policies.soft_deleted.colum")
    assert "did you mean 'canary_rows'?" in one(problems, "load.canary")


def test_bad_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant="pool:\n  local: {PoolName: acme\nattributes: [\n"))
    (p,) = problems
    assert p.startswith(f"{TENANT_FILE} (line 3, column ") and "bad YAML syntax" in p


def test_missing_tenant_file(tmp_path: Path) -> None:
    root = write(tmp_path)
    problems = problems_of(root, "acme-j")
    assert problems == ["mappings/tenants/acme-j.yaml: missing tenant file; create it, or choose one of: "
                        "acme-jp; did you mean 'acme-jp'?"]


def test_missing_default_file(tmp_path: Path) -> None:
    (p,) = problems_of(write(tmp_path, default=None))
    assert p.startswith(f"{DEFAULT_FILE}: cannot read the file")


def test_missing_sections(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, default="default_region: JP\n"))
    assert "required section missing; add source:" in one(problems, f"{TENANT_FILE}: source:")
    assert "required section missing; add username:" in one(problems, "username:")
    assert "required section missing; add attributes:" in one(problems, "attributes:")


def test_tenant_and_region_values(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + "tenant: acme\ndefault_region: NO\n"))
    assert "write tenant: acme-jp" in one(problems, f"{TENANT_FILE}: tenant (line 7)")
    assert 'put the value in quotes, e.g. default_region: "NO"' in one(problems, "default_region (line 8)")
    problems = problems_of(write(tmp_path, tenant=POOL + "default_region: JPN\n"))
    assert "'JPN' is not an ISO 3166 region code" in one(problems, "default_region")


def test_report_and_load_ranges(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
report: {reject_threshold: 20}
load: {chunk_rows: 600000, canary_rows: -1}
source: {partition_rows: 0, query: ../users.txt}
"""))
    assert "must be a fraction from 0 to 1" in one(problems, "report.reject_threshold")
    assert "from 1 to 500000" in one(problems, "load.chunk_rows")
    assert "from 0 to" in one(problems, "load.canary_rows")
    assert "from 1 to" in one(problems, "source.partition_rows")
    assert "must name a .sql file inside the SQL directory" in one(problems, "source.query")


def test_numbers_yaml_reads_as_octal_or_base_60_are_refused(tmp_path: Path) -> None:
    # YAML 1.1: 0042 is octal 34, 12:30 is 750; the constant was imported as "34"
    problems = problems_of(write(tmp_path, tenant=POOL + "attributes: {custom:legacy_id: {constant: 0042}}\n"
                                 "filters: {since: 12:30, code: \"0042\", limit: 0, rows: 500_000}\n"))
    assert 'YAML reads 0042 as the octal number 34; put it in quotes ("0042")' in one(
        problems, f"{TENANT_FILE} (line 7, column 43)")
    assert "YAML reads 12:30 as the base 60 number 750" in one(problems, f"{TENANT_FILE} (line 8, column 18)")
    assert len(problems) == 2     # quoted text, 0 and 500_000 read as written


def test_numbers_yaml_reads_otherwise_are_refused_where_they_become_text(tmp_path: Path) -> None:
    # a calling code +81 was imported as "81" for every user, a version 1.50 as "1.5", 0x1F as "31"
    problems = problems_of(write(tmp_path, tenant=POOL + """\
attributes:
  custom:legacy_id: {constant: +81}
  locale: {constant: 1.50}
  nickname: {constant: 0x1F}
  zoneinfo: {constant: 1_000}
  website: {constant: 42}
  profile: {constant: "+81"}
policies: {disabled: {column: is_active, active_values: [+1, 1, "t"]}}
filters: {rows: 500_000, ratio: 1.50}
"""))
    assert 'YAML reads +81 as the number 81, so every user would get "81"; put it in quotes ("+81")' in one(
        problems, f"{TENANT_FILE}: attributes.custom:legacy_id.constant (line 8)")
    assert 'YAML reads 1.50 as the number 1.5' in one(problems, "attributes.locale.constant (line 9)")
    assert 'YAML reads 0x1F as the number 31' in one(problems, "attributes.nickname.constant (line 10)")
    assert 'YAML reads 1_000 as the number 1000' in one(problems, "attributes.zoneinfo.constant (line 11)")
    assert 'put it in quotes ("+1")' in one(problems, f"{TENANT_FILE}: policies.disabled.active_values[0]")
    assert len(problems) == 5     # 42 and "+81" read as written; numbers bound as parameters stay numbers


def test_filters_the_query_does_not_use_are_named_before_anything_runs(tmp_path: Path) -> None:
    # the query binds only the names it uses: a misspelt filter kept no user out, and all were imported
    from pipeline.plan import check_filters_used

    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "users.sql").write_text("SELECT * FROM app_users WHERE tenant_code = :tenant\n"
                                   "  AND created_at >= :min_created -- not :since\n", encoding="utf-8")
    m = load_mapping(write(tmp_path, tenant=POOL + 'filters:\n  min_creatd: "2015-01-01"\n  since: 1\n'), "acme-jp")
    with pytest.raises(MappingError) as info:
        check_filters_used(m, sql)
    problems = info.value.problems
    assert "the query users.sql has no :min_creatd" in one(problems, f"{TENANT_FILE}: filters.min_creatd (line 8)")
    assert "did you mean 'min_created'?" in one(problems, "filters.min_creatd")
    assert "use :since in the query's WHERE or remove the filter" in one(problems, "filters.since (line 9)")
    assert len(problems) == 2      # a name inside a comment is no parameter
    check_filters_used(load_mapping(write(tmp_path, tenant=POOL + 'filters: {min_created: "2015-01-01"}\n'),
                                    "acme-jp"), sql)


def test_a_yaml_boolean_constant_of_an_attribute_that_is_no_flag_is_refused(tmp_path: Path) -> None:
    # YAML 1.1 reads a Norwegian tenant's locale: {constant: no} as false: every user got locale "false"
    problems = problems_of(write(tmp_path, tenant=POOL + "attributes:\n  locale: {constant: no}\n"
                                 "  email_verified: {constant: yes}\n  custom:legacy_id: {constant: on}\n"))
    assert "and locale is not a flag; put the value in quotes" in one(problems, "attributes.locale.constant")
    assert len(problems) == 1     # a flag's yes is true; a custom attribute may be a Boolean one


def test_a_numeric_tenant_name_matches_its_file(tmp_path: Path) -> None:
    # YAML reads tenant: 1001 as a number; the message said to write what was written
    assert load_mapping(write(tmp_path, tenant=POOL + "tenant: 1001\n", name="1001"), "1001").tenant == "1001"
    problems = problems_of(write(tmp_path, tenant=POOL + "tenant: 1002\n", name="1001"), "1001")
    assert "'1002' does not match the file name; write tenant: 1001" in one(problems, ": tenant (line 7)")



def test_an_empty_list_filter_is_refused(tmp_path: Path) -> None:
    # role IN :roles with [] is no SQL on PostgreSQL, and would select no user anywhere
    problems = problems_of(write(tmp_path, tenant=POOL + "filters: {roles: [], codes: [a]}\n"))
    assert "an empty list matches no row" in one(problems, "filters.roles")
    assert len(problems) == 1


def test_a_list_inside_a_filter_list_is_refused(tmp_path: Path) -> None:
    # role IN ((admin, staff)) is no SQL either; the driver's error would name no key
    problems = problems_of(write(tmp_path, tenant=POOL + "filters: {roles: [[admin, staff]], codes: [a, 1]}\n"))
    assert "a list inside a list" in one(problems, "filters.roles[0]")
    assert len(problems) == 1


def test_a_tenant_file_name_with_a_space_or_comma_is_refused(tmp_path: Path) -> None:
    # all tenants ran "foo bar", but --tenant "foo bar" read two tenants, foo and bar
    for name in ("foo bar", "a,b"):
        problems = problems_of(write(tmp_path / name, name=name), name)
        fixed = name.replace(" ", "-").replace(",", "-")
        assert "holds a space or a comma" in one(problems, f"rename the file, e.g. {fixed}.yaml")

def test_filters_that_clash_with_params(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + "filters: {tenant: x, 'bad name': 1}\n"))
    assert "already set by source.params" in one(problems, f"{TENANT_FILE}: filters.tenant")
    assert "is not a bound-parameter name" in one(problems, "filters.bad name")


def test_pool_shape_problems(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant="""\
pool:
  user_pool_id: not a pool id
  local:
    AliasAttributes: [email]
    UsernameAttributes: [emial]
    MfaConfiguration: OFF
    UsernameConfiguration: {CaseSensitive: "no"}
    Schema:
      - {Name: custom:legacy_id, AttributeDataType: String, StringAttributeConstraints: {MaxLength: 64}}
      - {Name: role}
"""))
    assert "is not a user pool id" in one(problems, "pool.user_pool_id")
    assert "required: the name of the pool" in one(problems, "pool.local.PoolName")
    assert "did you mean 'email'?" in one(problems, "pool.local.UsernameAttributes[0]")
    assert "either AliasAttributes or UsernameAttributes" in one(problems, "pool.local.UsernameAttributes (")
    assert 'quote it: MfaConfiguration: "OFF"' in one(problems, "pool.local.MfaConfiguration")
    assert "auto-verifies email or phone_number" in one(problems, "pool.local.AutoVerifiedAttributes")
    assert "CaseSensitive: false" in one(problems, "pool.local.UsernameConfiguration")
    assert "write Name: legacy_id; Cognito adds the 'custom:' prefix" in one(problems, "Schema[0].Name")
    assert 'write MaxLength: "64"' in one(problems, "Schema[0].StringAttributeConstraints.MaxLength")
    assert "needs one of" in one(problems, "Schema[1].AttributeDataType")


def test_pool_section_is_required(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant="{}"))
    assert "add pool: with user_pool_id:" in one(problems, f"{TENANT_FILE}: pool")


def test_mapping_must_fit_the_local_pool(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant="""\
username: {strategy: email}
attributes:
  custom:tenant: {constant: "{tenant}"}
  email_verified: null
pool:
  local:
    PoolName: acme
    AliasAttributes: [email]
    AutoVerifiedAttributes: [email]
    Schema: [{Name: legacy_id, AttributeDataType: String}, {Name: tenant_id, AttributeDataType: String}]
"""))
    assert ("declares no 'custom:tenant'; add {Name: tenant, AttributeDataType: String} to the Schema "
            "or remove the rule; did you mean 'custom:tenant_id'?") in \
        one(problems, f"{TENANT_FILE}: attributes.custom:tenant (line 3)")
    assert "add attributes.email_verified" in one(problems, "auto-verifies email")
    assert "Cognito rejects a username that looks like one" in \
        one(problems, f"{TENANT_FILE}: username.strategy")


def test_username_attributes_pool_needs_the_matching_strategy(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant="""\
pool:
  local: {PoolName: g, UsernameAttributes: [email], AutoVerifiedAttributes: [email],
          Schema: [{Name: legacy_id, AttributeDataType: String}]}
"""))
    assert "write strategy: email" in one(problems, f"{DEFAULT_FILE}: username.strategy")


def test_username_strategy_problems(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, tenant=POOL + """\
username: {strategy: phone, column: login}
attributes: {phone_number: null}
"""))
    assert "'column:' is not used by strategy phone; remove it" in one(problems, "username.column")
    assert "add attributes.phone_number" in one(problems, "username.strategy")
    problems = problems_of(write(tmp_path, tenant=POOL + "username: {strategy: mail}\n"))
    assert "did you mean 'email'?" in one(problems, "username.strategy")


def test_check_header_names_attributes_the_pool_lacks(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path), "acme-jp")
    header = ["cognito:username", "email", "email_verified", "phone_number", "locale", "custom:legacy"]
    with pytest.raises(MappingError) as info:
        check_header(m, header)
    (p,) = info.value.problems
    assert p.startswith(f"{DEFAULT_FILE}: attributes.custom:legacy_id (line 9): unknown attribute for "
                        f"this pool: its CSV header has no column 'custom:legacy_id'; did you mean "
                        f"'custom:legacy'?")
    assert "add it to the pool's schema" in p
    check_header(m, [*header, "custom:legacy_id"])
    with pytest.raises(MappingError) as info:                    # a required attribute nothing fills
        check_header(m, [*header, "custom:legacy_id", "name"], required=["cognito:username", "email", "name"])
    (p,) = info.value.problems
    assert p == (f"{DEFAULT_FILE}: attributes (line 4): the pool requires attribute 'name' but the mapping fills "
                 "no such column, so every user would be rejected; map a source column to it (attributes: {name: "
                 "{from: <column>}})")


def test_check_header_wants_a_verified_flag_of_what_a_real_pool_auto_verifies(tmp_path: Path) -> None:
    """A pool given by id only (real AWS) is known from its contract, not from pool.local."""
    without = DEFAULT.replace("  email_verified: {from: email_confirmed, transform: {boolean: {default: false}}}\n", "")
    m = load_mapping(write(tmp_path, tenant="pool: {user_pool_id: us-east-1_AbC123}\n", default=without), "acme-jp")
    header = ["cognito:username", "email", "email_verified", "phone_number", "phone_number_verified", "locale",
              "custom:legacy_id"]
    with pytest.raises(MappingError) as info:
        check_header(m, header, verified_flags=["email_verified", "phone_number_verified"])
    (p,) = info.value.problems
    assert p == (f"{DEFAULT_FILE}: attributes (line 4): the pool auto-verifies email and phone_number, so every "
                 "user needs email_verified or phone_number_verified true (import-rules fact 5); add "
                 "attributes.email_verified")
    check_header(load_mapping(write(tmp_path), "acme-jp"), header, verified_flags=["email_verified"])


def test_check_header_wants_a_username_strategy_that_fits_a_real_pools_sign_in(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant="pool: {user_pool_id: us-east-1_AbC123}\n"), "acme-jp")   # column: login
    header = ["cognito:username", "email", "email_verified", "phone_number", "locale", "custom:legacy_id"]
    with pytest.raises(MappingError) as info:
        check_header(m, header, sign_in={"UsernameAttributes": ["email"], "AliasAttributes": []})
    (p,) = info.value.problems
    assert p == (f"{DEFAULT_FILE}: username.strategy (line 3): the pool signs in with UsernameAttributes "
                 "['email'], so cognito:username must hold that value; write strategy: email")
    check_header(m, header, sign_in={"UsernameAttributes": [], "AliasAttributes": ["email"]})   # column fits


def test_check_header_wants_a_constant_mfa_flag_the_pools_mfa_allows(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, tenant=POOL + 'attributes:\n  cognito:mfa_enabled: {constant: "false"}\n'),
                     "acme-jp")
    header = ["cognito:username", "email", "email_verified", "phone_number", "locale", "custom:legacy_id",
              "cognito:mfa_enabled"]
    with pytest.raises(MappingError) as info:
        check_header(m, header, mfa="ON")
    (p,) = info.value.problems
    assert p == (f"{TENANT_FILE}: attributes.cognito:mfa_enabled (line 8): the pool's MFA is ON, so "
                 'cognito:mfa_enabled must be true or empty, but the mapping sets "false" for every user, so '
                 'every user would be rejected; write {constant: "true"} or remove the rule')
    for fits in ("OFF", "OPTIONAL", None):
        check_header(m, header, mfa=fits)


def test_several_problems_come_back_together(tmp_path: Path) -> None:
    root = write(tmp_path, tenant=POOL + """\
attributes:
  phone_numbr: {from: phone}
  email: {from: email, transform: lowr}
policies: {newlines: keep}
report: {reject_threshold: 2}
bogus: 1
""")
    with pytest.raises(MappingError) as info:
        load_mapping(root, "acme-jp")
    problems = info.value.problems
    assert len(problems) == 5
    for needle in ("attributes.phone_numbr", "attributes.email.transform", "policies.newlines",
                   "report.reject_threshold", "bogus"):
        one(problems, needle)
        assert needle in str(info.value)
    assert info.value.tenant == "acme-jp"
