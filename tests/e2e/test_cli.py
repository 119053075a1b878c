"""The command line as a user meets it: mistakes give a message (never a traceback), the report and
the dry run touch no import job, offline planning needs no service, and real AWS is never reached
without an explicit switch."""

from __future__ import annotations

import html
import json
import re
import socket
import sqlite3
from pathlib import Path

import pytest

from pipeline.ledger import Ledger
from tests.e2e.conftest import ROOT, TENANTS, Workspace

USERS_SQL = Path(__file__).resolve().parents[2] / "sql" / "users.sql"


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


def test_unknown_tenant_names_the_known_ones(workspace: Workspace) -> None:
    proc = workspace.run("report", "--tenant", "nope")
    assert proc.returncode == 2
    no_traceback(proc)
    assert "Unknown tenant(s) nope" in proc.stderr and all(t in proc.stderr for t in TENANTS)
    assert "did you mean" not in proc.stderr
    close = workspace.run("report", "--tenant", "acmejp")
    assert close.returncode == 2 and "Unknown tenant(s) acmejp" in close.stderr
    assert "did you mean 'acme-jp'?" in close.stderr


def test_a_failed_gate_makes_the_report_exit_3_after_every_report(workspace: Workspace) -> None:
    mapping = workspace.root / "mappings" / "tenants" / "globex-us.yaml"
    mapping.write_text(mapping.read_text() + "\nreport: {reject_threshold: 0.01}\n")
    proc = workspace.run("report", "--tenant", "globex-us,acme-jp")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "rejection gate failed for globex-us:" in proc.stderr and "acme-jp" not in proc.stderr
    assert "Gate FAILED" in proc.stdout and "Gate PASSED" in proc.stdout
    for tenant in ("globex-us", "acme-jp"):                  # both reports written all the same
        assert (workspace.latest_run(tenant) / "report.html").exists()
    assert json.loads((workspace.latest_run("globex-us") / "report.json").read_text())["gate"]["passed"] is False


@pytest.mark.postgres
def test_a_postgres_boolean_flag_that_disables_every_row_says_what_to_write(workspace: Workspace) -> None:
    import sqlalchemy as sa

    from pipeline.demo import load_table
    from tests.dbfixtures import PG_ADMIN, _name, _pg_admin, _with_database, unreachable

    try:
        admin = _pg_admin()
    except Exception as exc:  # noqa: BLE001 - no server: skipped (or failed) like every PostgreSQL test
        unreachable(f"PostgreSQL not reachable: {exc}")
    name = _name()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        url = _with_database(PG_ADMIN, name)
        load_table(url, 200)
        engine = sa.create_engine(url)
        with engine.begin() as conn:   # the legacy flag as a native boolean: COPY writes t/f
            conn.exec_driver_sql("ALTER TABLE app_users ALTER COLUMN is_active TYPE boolean USING is_active <> 0")
            inactive = conn.exec_driver_sql("SELECT count(*) FILTER (WHERE NOT is_active) FROM app_users "
                                            "WHERE tenant_code = 'acme-jp'").scalar()
        engine.dispose()
        env = {"LEGACY_DB_URL": url}
        proc = workspace.run("report", "--tenant", "acme-jp", extra_env=env)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        note = "NOTE: Every row was rejected as disabled: no row has is_active in active_values ['1'] (it holds "
        assert note in proc.stdout and "'t'" in proc.stdout
        page = html.unescape((workspace.latest_run("acme-jp") / "report.html").read_text())
        assert note.removeprefix("NOTE: ") in page
        migrate = workspace.run("migrate", "--tenant", "acme-jp", extra_env=env)
        assert migrate.returncode == 3 and note in migrate.stderr    # the gate's message carries it too
        path = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
        path.write_text(path.read_text() + '\npolicies:\n  disabled: {column: is_active, active_values: ["t"], '
                        'action: reject}\n')
        fixed = workspace.run("report", "--tenant", "acme-jp", extra_env=env)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "NOTE" not in fixed.stdout
        disabled = [r for r in workspace.report("acme-jp")["by_rule"] if r["reason"] == "disabled"]
        assert [r["rows"] for r in disabled] == ([inactive] if inactive else [])
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_killed_plans_staged_rows_are_removed_by_the_next_plan_of_the_tenant(workspace: Workspace) -> None:
    from tests.test_staging import _claim_in_child

    killed = workspace.root / "runs" / "acme-jp" / "20250101T000000000000Z" / "staging"
    _claim_in_child(killed, "die").wait()                  # as a plan killed with SIGKILL leaves it
    other = workspace.root / "runs" / "globex-us" / "20250101T000000000000Z" / "staging"
    _claim_in_child(other, "die").wait()
    proc = workspace.run("report", "--tenant", "acme-jp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not killed.exists() and not killed.with_name("staging.lock").exists()
    assert other.exists()                                   # another tenant's: its own next plan sweeps it
    assert not (workspace.latest_run("acme-jp") / "staging").exists()


def test_a_report_removes_the_import_files_of_earlier_reports_and_dry_runs_and_only_those(
        workspace: Workspace) -> None:
    """Earlier reports' and dry runs' import files are previews: the next plan removes them. A dry run's
    stayed until a load of the tenant ran to its end, for good if none did. Files a run asked to keep, and
    a migrate's own, stay."""
    kept = workspace.run("migrate", "--tenant", "acme-jp", "--keep-files")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    migrate_run = workspace.latest_run("acme-jp")
    dry_runs = []
    for args in (("--keep-files",), ()):
        dry = workspace.run("migrate", "--tenant", "acme-jp", "--dry-run", *args)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        dry_runs.append(workspace.latest_run("acme-jp"))
    kept_dry, dropped_dry = dry_runs
    first = workspace.run("report", "--tenant", "acme-jp")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "removed the would-be import files (PII) of 1 earlier report or dry run(s) of acme-jp" in first.stdout
    first_run = workspace.latest_run("acme-jp")
    assert list((first_run / "chunks").glob("chunk-*.csv"))
    assert not (dropped_dry / "chunks").exists() and (dropped_dry / "report.json").exists()
    second = workspace.run("report", "--tenant", "acme-jp")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "removed the would-be import files (PII) of 1 earlier report or dry run(s) of acme-jp" in second.stdout
    assert not (first_run / "chunks").exists()
    assert (first_run / "report.html").exists() and (first_run / "rejects.csv").exists()   # the report stays
    assert list((workspace.latest_run("acme-jp") / "chunks").glob("chunk-*.csv"))         # the newest: kept
    for run in (migrate_run, kept_dry):                     # kept on request
        assert list((run / "chunks").glob("chunk-*.csv"))


def test_a_dry_runs_import_files_are_removed_by_the_next_plan_unless_kept(workspace: Workspace) -> None:
    """A dry run's import files (and retry files) are PII like any others: the tenant's next plan (here a dry
    run's, then a migrate's) removes them, unless the dry run had --keep-files. They stayed on disk for
    good, and --keep-files did nothing with --dry-run."""
    runs, outputs = [], []
    for args in ((), ("--keep-files",)):
        dry = workspace.run("migrate", "--tenant", "acme-jp", "--dry-run", *args)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        runs.append(workspace.latest_run("acme-jp"))
        outputs.append(dry.stdout)
        assert list((runs[-1] / "chunks").glob("chunk-*.csv"))
    assert "removed the would-be import files (PII) of 1 earlier report or dry run(s)" in outputs[1]
    migrate = workspace.run("migrate", "--tenant", "acme-jp")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "removed" not in migrate.stdout                 # the kept one is kept
    dropped, kept = runs
    assert not (dropped / "chunks").exists() and (dropped / "report.json").exists()
    assert list((kept / "chunks").glob("chunk-*.csv"))


def test_the_import_files_of_a_migrate_its_gate_stopped_are_removed_by_the_next_load(workspace: Workspace) -> None:
    """A migrate the rejection gate stops has written its import files (every valid user's email, phone and
    name) and no load.json: every later prune took it for a run from before load.json and kept them for good."""
    mapping = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
    text = mapping.read_text()
    mapping.write_text(text + "\nreport: {reject_threshold: 0.01}\n")
    gated = workspace.run("migrate", "--tenant", "acme-jp")
    assert gated.returncode == 3, gated.stdout + gated.stderr
    gated_run = workspace.latest_run("acme-jp")
    assert list((gated_run / "chunks").glob("chunk-*.csv"))
    mapping.write_text(text)
    proc = workspace.run("migrate", "--tenant", "acme-jp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (gated_run / "chunks").exists() and (gated_run / "report.json").exists()


def test_a_tenant_stopped_by_its_gate_does_not_stop_the_rest_of_the_batch(workspace: Workspace) -> None:
    mapping = workspace.root / "mappings" / "tenants" / "globex-us.yaml"
    mapping.write_text(mapping.read_text() + "\nreport: {reject_threshold: 0.01}\n")
    proc = workspace.run("migrate")                                # acme-jp, globex-us, initech-de
    assert proc.returncode == 3, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "of globex-us's rows were rejected, over the threshold of 1.0%" in proc.stderr
    assert "The rejection gate stopped globex-us before any import (the other tenants ran)" in proc.stderr
    assert workspace.jobs("globex-us") == [] and workspace.users("globex-us") == []
    for tenant in ("acme-jp", "initech-de"):                      # before and after it in the batch
        assert workspace.jobs(tenant) and len(workspace.users(tenant)) == workspace.report(tenant)["counts"]["imported"]
    single = workspace.run("migrate", "--tenant", "globex-us")
    assert single.returncode == 3 and "over the threshold" in single.stderr


def test_tenants_can_be_a_comma_separated_batch(workspace: Workspace) -> None:
    proc = workspace.run("migrate", "--tenant", "globex-us,acme-jp", "--tenant", "acme-jp", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (workspace.root / "runs").iterdir() if p.is_dir()) == ["acme-jp", "globex-us"]
    assert proc.stdout.index("globex-us  pool") < proc.stdout.index("acme-jp  pool")   # in the order given
    empty = workspace.run("report", "--tenant", " , ")
    assert empty.returncode == 2 and "--tenant names no tenant" in empty.stderr
    no_traceback(empty)


def test_a_broken_mapping_names_file_key_and_fix(workspace: Workspace) -> None:
    path = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
    path.write_text(path.read_text() + "\nattributes:\n  phone_numbr: {from: phone, transform: phone}\n")
    proc = workspace.run("report", "--tenant", "acme-jp")
    assert proc.returncode == 2
    no_traceback(proc)
    assert "acme-jp.yaml: attributes.phone_numbr" in proc.stderr and "did you mean 'phone_number'" in proc.stderr


def test_an_attribute_the_pool_requires_and_the_mapping_never_fills_is_a_mapping_error(
        workspace: Workspace) -> None:
    path = workspace.root / "mappings" / "tenants" / "globex-us.yaml"
    path.write_text(path.read_text() + "      - {Name: nickname, AttributeDataType: String, Required: true, "
                    "Mutable: true}\n")
    proc = workspace.run("report", "--tenant", "globex-us")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "the pool requires attribute 'nickname' but the mapping fills no such column" in proc.stderr
    assert "attributes: {nickname: {from: <column>}}" in proc.stderr
    assert not (workspace.root / "runs" / "globex-us").exists()          # stopped before any row was read


def test_a_pool_with_mfa_on_against_the_default_mfa_constant_is_a_mapping_error(workspace: Workspace) -> None:
    path = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
    path.write_text(path.read_text().replace('MfaConfiguration: "OFF"', 'MfaConfiguration: "ON"'))
    proc = workspace.run("report", "--tenant", "acme-jp")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert ("attributes.cognito:mfa_enabled (line 26): the pool's MFA is ON, so cognito:mfa_enabled must be true "
            "or empty") in proc.stderr and "mappings/default.yaml" in proc.stderr


def test_an_unreachable_source_hides_the_password(workspace: Workspace) -> None:
    env_url = "postgresql+psycopg2://postgres:s3cret-pw@127.0.0.1:5432/no_such_database_here"
    proc = workspace.run("report", "--tenant", "acme-jp", extra_env={"LEGACY_DB_URL": env_url})
    assert proc.returncode == 2
    no_traceback(proc)
    assert "s3cret-pw" not in proc.stdout + proc.stderr and "***" in proc.stderr
    assert "LEGACY_DB_URL" in proc.stderr


def test_an_unwritable_runs_directory_is_a_message(workspace: Workspace) -> None:
    blocker = workspace.root / "not-a-directory"
    blocker.write_text("")
    env = {"MIGRATE_RUNS_DIR": str(blocker / "runs"),
           "LEGACY_DB_URL": f"sqlite:///{workspace.root / 'var' / 'demo-legacy.sqlite'}"}
    proc = workspace.run("report", "--tenant", "acme-jp", extra_env=env)
    assert proc.returncode == 2
    no_traceback(proc)
    assert "error (system): Not a directory: " + str(blocker) in proc.stderr
    assert "MIGRATE_RUNS_DIR" in proc.stderr


def test_a_damaged_ledger_is_a_message(workspace: Workspace) -> None:
    ledger = workspace.root / "runs" / "ledger.sqlite"
    ledger.parent.mkdir(parents=True)
    ledger.write_text("not a database")
    proc = workspace.run("migrate", "--tenant", "acme-jp")
    assert proc.returncode == 2
    no_traceback(proc)
    assert f"The run ledger {ledger} cannot be opened (file is not a database)" in proc.stderr
    ledger.unlink()
    Ledger(ledger).close()                 # a ledger that opens but refuses a write, as a full disk would
    with sqlite3.connect(ledger) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        db.execute("DROP TABLE runs")
        db.execute("CREATE VIEW runs AS SELECT " + ", ".join(f"NULL AS {c}" for c in columns))
    proc = workspace.run("migrate", "--tenant", "acme-jp")
    assert proc.returncode == 2
    no_traceback(proc)
    assert "error (ledger): the run ledger could not be written (cannot modify runs" in proc.stderr


def test_a_taken_port_is_a_message(workspace: Workspace) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = workspace.run("serve-cognito", "--port", str(taken.getsockname()[1]), timeout=60)
    assert proc.returncode == 2
    no_traceback(proc)
    assert "another process holds that port" in proc.stderr


def test_real_aws_needs_the_explicit_yes(workspace: Workspace) -> None:
    env = {"COGNITO_TARGET": "aws", "COGNITO_REGION": "eu-west-1", "COGNITO_ENDPOINT_URL": "",
           "COGNITO_USER_POOL_ID": "eu-west-1_AbC123",
           "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role"}
    proc = workspace.run("migrate", "--tenant", "acme-jp", extra_env=env)
    assert proc.returncode == 2
    no_traceback(proc)
    assert "REAL AWS: region eu-west-1" in proc.stderr and "without --yes" in proc.stderr
    assert not (workspace.root / "runs" / "acme-jp").exists()       # nothing planned, nothing written


def test_a_tenant_with_only_an_aws_pool_is_named_before_a_local_batch_starts(workspace: Workspace) -> None:
    """A mapping that names only an AWS pool (pool.user_pool_id) was meant for AWS: on the local target the
    run names it, and how AWS is chosen, before any tenant runs; the batch imported the tenants before it
    locally, then stopped with 'has no pool.local definition'."""
    tenant_file = workspace.root / "mappings" / "tenants" / "globex-us.yaml"
    text = tenant_file.read_text()
    tenant_file.write_text(text[:text.index("pool:")] + "pool:\n  user_pool_id: us-east-1_AbC123\n")
    proc = workspace.run("migrate", "--tenant", "acme-jp,globex-us")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "tenant globex-us: mappings/tenants/globex-us.yaml names only the AWS pool us-east-1_AbC123 " \
        "(pool.user_pool_id), which a run reaches only with COGNITO_TARGET=aws" in proc.stderr
    assert not (workspace.root / "runs" / "acme-jp").exists() and workspace.jobs("acme-jp") == []


def test_aws_settings_without_the_aws_target_are_said_to_be_unused(workspace: Workspace) -> None:
    """COGNITO_USER_POOL_ID and COGNITO_LOGS_ROLE_ARN set for AWS while COGNITO_TARGET was forgotten: the run
    stays local, and now says that they are not used, so that a local run is not taken for the AWS one."""
    env = {"COGNITO_USER_POOL_ID": "eu-west-1_AbC123",
           "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role"}
    proc = workspace.run("report", "--tenant", "acme-jp", extra_env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Target: local Cognito import service" in proc.stderr
    assert "note: COGNITO_USER_POOL_ID and COGNITO_LOGS_ROLE_ARN are set but not used: this run goes to the local " \
        "service, not to AWS; COGNITO_TARGET=aws selects AWS." in proc.stderr


def test_a_local_service_on_another_host_is_announced_and_needs_the_yes(workspace: Workspace) -> None:
    """COGNITO_ENDPOINT_URL on another machine gets every user's email, phone and name, as AWS would: the run
    says so loudly and, like AWS, refuses to import without --yes; it was used silently as the local service."""
    env = {"COGNITO_ENDPOINT_URL": "http://10.255.255.1:9229"}
    proc = workspace.run("migrate", "--tenant", "acme-jp", extra_env=env, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "NOT THIS MACHINE: COGNITO_ENDPOINT_URL=http://10.255.255.1:9229. Import files" in proc.stderr
    assert "without --yes" in proc.stderr and "Target: local Cognito" not in proc.stderr
    assert not (workspace.root / "runs" / "acme-jp").exists()       # nothing planned, nothing written
    here = workspace.run("report", "--tenant", "acme-jp")           # the service on 127.0.0.1: no banner
    assert here.returncode == 0 and "NOT THIS MACHINE" not in here.stderr


def test_a_dry_run_on_aws_reads_the_pool_like_report_without_the_yes(workspace: Workspace) -> None:
    """A dry run writes nothing to Cognito: it reads the pool's contract, as ``report`` does, so it needs
    no --yes and says so. AWS_ENDPOINT_URL points the AWS client at the local service (no real AWS)."""
    assert workspace.run("report", "--tenant", "acme-jp").returncode == 0   # creates the tenant's pool
    env = {"COGNITO_TARGET": "aws", "COGNITO_REGION": "us-east-1", "COGNITO_ENDPOINT_URL": "",
           "AWS_ENDPOINT_URL": workspace.service.endpoint_url, "COGNITO_USER_POOL_ID": workspace.pool_id("acme-jp"),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role"}
    dry = workspace.run("migrate", "--tenant", "acme-jp", "--dry-run", extra_env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "REAL AWS: region us-east-1. Only GetCSVHeader and DescribeUserPool are read." in dry.stderr
    assert "without --yes" not in dry.stderr and "nothing imported" in dry.stdout
    assert workspace.jobs("acme-jp") == [] and workspace.users("acme-jp") == []
    real = workspace.run("migrate", "--tenant", "acme-jp", extra_env=env)          # the import still asks
    assert real.returncode == 2 and "without --yes" in real.stderr
    assert workspace.jobs("acme-jp") == [] and workspace.users("acme-jp") == []


def test_pools_outside_the_runs_aws_region_are_named_before_anything_is_called(workspace: Workspace) -> None:
    """A pool id starts with its region: each tenant whose pool is elsewhere is named, with the region to
    run it in, before the run reaches AWS (here no AWS is reachable: the calls would retry for a minute);
    so is each tenant without a pool id, which stopped a batch half way through."""
    tenant_file = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
    pool_id = "pool:\n  user_pool_id: ap-northeast-1_AbC123\n"
    tenant_file.write_text(tenant_file.read_text().replace("pool:\n", pool_id, 1))
    env = {"COGNITO_TARGET": "aws", "COGNITO_REGION": "us-east-1", "COGNITO_ENDPOINT_URL": "",
           "COGNITO_USER_POOL_ID": "eu-central-1_XyZ789", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "COGNITO_LOGS_ROLE_ARN": "arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role"}
    proc = workspace.run("migrate", "--yes", extra_env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "Not every tenant has a pool in AWS region us-east-1" in proc.stderr and "REAL AWS" not in proc.stderr
    assert "tenant acme-jp: pool ap-northeast-1_AbC123 (pool.user_pool_id in mappings/tenants/acme-jp.yaml)" \
        in proc.stderr and "COGNITO_REGION=ap-northeast-1" in proc.stderr
    for tenant in ("globex-us", "initech-de"):     # the pool COGNITO_USER_POOL_ID names, for the others
        assert f"tenant {tenant}: pool eu-central-1_XyZ789 (COGNITO_USER_POOL_ID)" in proc.stderr
    assert not (workspace.root / "runs" / "acme-jp").exists()
    without = workspace.run("migrate", "--yes", extra_env={**env, "COGNITO_USER_POOL_ID": ""})
    assert without.returncode == 2 and "REAL AWS" not in without.stderr
    for tenant in ("globex-us", "initech-de"):
        assert f"tenant {tenant}: no pool; set pool.user_pool_id in mappings/tenants/{tenant}.yaml" in without.stderr
    # in its own region the tenant gets as far as the question before a real import (no --yes here)
    same = workspace.run("migrate", "--tenant", "acme-jp", extra_env={**env, "COGNITO_REGION": "ap-northeast-1"})
    assert "Not every tenant" not in same.stderr and "REAL AWS: region ap-northeast-1" in same.stderr
    assert "without --yes" in same.stderr


def test_an_incomplete_aws_configuration_lists_every_problem(workspace: Workspace) -> None:
    proc = workspace.run("migrate", extra_env={"COGNITO_TARGET": "aws", "COGNITO_ENDPOINT_URL": "",
                                               "AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert proc.returncode == 2
    no_traceback(proc)
    assert "needs a region" in proc.stderr and "COGNITO_LOGS_ROLE_ARN" in proc.stderr


def test_report_and_dry_run_create_no_import_job(workspace: Workspace) -> None:
    report = workspace.run("report")
    assert report.returncode == 0, report.stdout + report.stderr
    dry = workspace.run("migrate", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    for tenant in TENANTS:
        assert workspace.jobs(tenant) == [] and workspace.users(tenant) == []
        run = workspace.latest_run(tenant)
        assert (run / "report.html").exists() and list((run / "chunks").glob("chunk-*.csv"))
        assert json.loads((run / "report.json").read_text())["counts"]["imported"] is None
        assert run.stat().st_mode & 0o777 == 0o700                       # staged rows and chunks hold PII
        assert {c.stat().st_mode & 0o777 for c in (run / "chunks").iterdir()} == {0o600}
    assert "nothing imported" in dry.stdout


def test_paths_with_brackets_are_printed_as_they_are(workspace: Workspace) -> None:
    # rich read "[old]" as a style tag and dropped it: the printed report path did not exist
    env = {"MIGRATE_RUNS_DIR": str(workspace.root / "runs [old]")}
    for args in (["report", "--tenant", "acme-jp"], ["migrate", "--dry-run", "--tenant", "acme-jp"]):
        proc = workspace.run(*args, extra_env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        printed = re.search(r"report: (.+?)  \(json: ", proc.stdout)
        assert printed and "runs [old]" in printed[1] and Path(printed[1]).is_file(), proc.stdout


def test_offline_plan_from_a_saved_contract(workspace: Workspace) -> None:
    online = workspace.run("report", "--tenant", "acme-jp")
    assert online.returncode == 0, online.stdout + online.stderr
    online_report = workspace.report("acme-jp")
    snapshot = workspace.root / "acme.contract.json"
    saved = workspace.run("save-contract", "--tenant", "acme-jp", "--out", str(snapshot))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    offline = workspace.run("report", "--tenant", "acme-jp", "--contract-snapshot", str(snapshot),
                            extra_env={"COGNITO_ENDPOINT_URL": "http://127.0.0.1:9"})   # nothing listens
    assert offline.returncode == 0, offline.stdout + offline.stderr
    offline_report = workspace.report("acme-jp")
    every_tenant = workspace.run("report", "--contract-snapshot", str(snapshot))   # one pool, many tenants
    assert every_tenant.returncode == 2 and "add --tenant" in every_tenant.stderr
    no_traceback(every_tenant)
    other_tenant = workspace.run("report", "--tenant", "globex-us", "--contract-snapshot", str(snapshot))
    assert other_tenant.returncode == 2, other_tenant.stdout + other_tenant.stderr
    no_traceback(other_tenant)
    assert f"(acme-jp-users-{workspace.suffix}), but tenant globex-us's mapping names the local pool " \
           f"globex-us-users-{workspace.suffix}" in other_tenant.stderr
    assert not (workspace.root / "runs" / "globex-us").exists()     # refused before any file is written
    assert offline_report["run_id"] != online_report["run_id"]
    assert offline_report["contract_fingerprint"] == online_report["contract_fingerprint"]
    assert offline_report["counts"] == online_report["counts"]


@pytest.mark.parametrize("args", [["migrate", "--on-failed-job", "sometimes"], ["report", "--bogus"]])
def test_usage_mistakes_are_messages(workspace: Workspace, args: list[str]) -> None:
    proc = workspace.run(*args)
    assert proc.returncode == 2
    no_traceback(proc)


@pytest.mark.parametrize("options", [["--recheck-pool"], ["--accept-missing"], ["--recheck-pool", "--accept-missing"]])
def test_final_check_options_with_a_dry_run_are_refused(workspace: Workspace, options: list[str]) -> None:
    """--recheck-pool and --accept-missing steer the final check, which a dry run never reaches: with
    --dry-run they did nothing, silently, and the user thought the preview had applied them."""
    proc = workspace.run("migrate", "--tenant", "acme-jp", "--dry-run", *options)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert f"{' and '.join(options)} steer the final check" in proc.stderr and "drop --dry-run" in proc.stderr
    assert not (workspace.root / "runs" / "acme-jp").exists()     # refused before the plan


def test_a_pool_change_between_two_runs_is_visible(workspace: Workspace) -> None:
    first = workspace.run("report", "--tenant", "acme-jp")
    assert first.returncode == 0, first.stdout + first.stderr
    assert workspace.report("acme-jp")["previous_contract"] is None
    workspace.idp.add_custom_attributes(UserPoolId=workspace.pool_id("acme-jp"), CustomAttributes=[
        {"Name": "plan", "AttributeDataType": "String", "Mutable": True}])
    second = workspace.run("report", "--tenant", "acme-jp")
    assert second.returncode == 0, second.stdout + second.stderr
    changed = workspace.report("acme-jp")
    assert changed["previous_contract"]["changed"] is True
    assert changed["previous_contract"]["fingerprint"] != changed["contract_fingerprint"]
    assert "the pool's contract changed since run" in second.stdout
    html = (workspace.latest_run("acme-jp") / "report.html").read_text()
    assert "Pool changed" in html and changed["previous_contract"]["run_id"] in html
    third = workspace.run("report", "--tenant", "acme-jp")
    assert workspace.report("acme-jp")["previous_contract"] is None and "contract changed" not in third.stdout


@pytest.mark.parametrize("query, expected", [
    ("SELECT * FROM app_users WHERE tenant_code = :tenant UNION ALL "
     "SELECT * FROM app_users WHERE tenant_code = :tenant AND id = (SELECT MIN(id) FROM app_users)",
     "is not unique"),
    ("SELECT CASE WHEN id % 7 = 0 THEN NULL ELSE id END AS id, tenant_code, login, email, email_confirmed, "
     "phone, phone_confirmed, first_name, last_name, birth_date, locale, role, is_active, deleted_at, "
     "created_at, updated_at FROM app_users WHERE tenant_code = :tenant", "have no value in the primary key"),
    # a binary key (a UUID kept in BINARY(16)): its bytes read as U+FFFD, so two keys could read alike
    ("SELECT CASE WHEN id % 7 = 0 THEN CAST(X'11C3FF' || id AS BLOB) ELSE id END AS id, tenant_code, login, "
     "email, email_confirmed, phone, phone_confirmed, first_name, last_name, birth_date, locale, role, is_active, "
     "deleted_at, created_at, updated_at FROM app_users WHERE tenant_code = :tenant", "LOWER(HEX(id)) AS id"),
])
def test_a_primary_key_that_cannot_name_one_user_stops_the_plan(workspace: Workspace, query: str,
                                                                  expected: str) -> None:
    """Outcomes are keyed by the legacy id: a repeated or missing one would make a user vanish."""
    sql = workspace.root / "sql"
    sql.mkdir()
    (sql / "users.sql").write_text(query + "\n")
    proc = workspace.run("report", "--tenant", "acme-jp", extra_env={"MIGRATE_SQL_DIR": str(sql)})
    assert proc.returncode == 2
    no_traceback(proc)
    assert expected in proc.stderr and "'id'" in proc.stderr
    run = workspace.latest_run("acme-jp")
    assert run.is_dir() and not (run / "staging").exists()    # the staged rows (PII) went with the plan


def test_filter_values_are_masked_in_the_report(workspace: Workspace) -> None:
    """A filter may name users (here: two accounts left out of the migration, by email and by phone). The
    report showed the mapping's filters as written: the addresses and numbers, unmasked, in report.json
    and report.html. They are masked there now, dates and codes kept; the query binds them as written."""
    sql = workspace.root / "sql"
    sql.mkdir()
    query = (ROOT / "sql" / "users.sql").read_text().replace(
        "WHERE tenant_code = :tenant", "WHERE tenant_code = :tenant AND (email IS NULL OR email NOT IN :exclude) "
        "AND (phone IS NULL OR phone <> :phone) AND created_at >= :since")
    (sql / "users.sql").write_text(query)
    tenant = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
    tenant.write_text(tenant.read_text() + "\nfilters: {exclude: [ceo.secret@example.com, cfo.secret@example.com], "
                      "phone: '+81 90 5555 0199', since: '1990-01-01'}\n")
    proc = workspace.run("report", "--tenant", "acme-jp", extra_env={"MIGRATE_SQL_DIR": str(sql)})
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    report = workspace.report("acme-jp")
    assert report["counts"]["source_rows"] > 0
    assert report["mapping"]["filters"] == {"exclude": ["c***@e***.com", "c***@e***.com"], "phone": "+81***99",
                                            "since": "1990-01-01"}
    for name in ("report.json", "report.html"):
        text = (workspace.latest_run("acme-jp") / name).read_text()
        assert "secret" not in text and "5555" not in text, name


def _import_file_column(run: Path, column: str) -> list[str]:
    """``column`` of every user in the run's import files (Cognito's dialect: ``\\,`` inside a value)."""
    values = []
    for path in sorted(p for p in (run / "chunks").glob("chunk-*.csv") if not p.name.endswith(".keys.csv")):
        header, *lines = path.read_text(encoding="utf-8").splitlines()
        at = header.split(",").index(column)
        values += [re.split(r"(?<!\\),", line)[at] for line in lines]
    return values


def duplicates(report: dict) -> int:
    return sum(r["rows"] for r in report["by_rule"] if r["reason"] == "duplicate_email")


def test_full_width_emails_are_counted_in_the_report_until_the_mapping_normalises_them(
        workspace: Workspace) -> None:
    """A full-width ``ａ`` in an email passes validation and would be imported as it is, where the user
    types an ordinary ``a``: the report counts exactly the import files' users who have one, and names the
    fix; with ``nfkc`` in the email's transform the same users import their ordinary address."""
    sql = workspace.root / "sql"
    sql.mkdir()
    columns = (USERS_SQL.read_text().split("SELECT", 1)[1].split("FROM", 1)[0])
    (sql / "users.sql").write_text(
        "SELECT" + columns.replace("    email,", "    replace(email, 'a', 'ａ') AS email,", 1)
        + "FROM app_users WHERE tenant_code = :tenant ORDER BY id\n")
    env = {"MIGRATE_SQL_DIR": str(sql)}
    proc = workspace.run("report", "--tenant", "acme-jp", extra_env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = workspace.report("acme-jp")
    emails = _import_file_column(workspace.latest_run("acme-jp"), "email")
    wide = sum("ａ" in e for e in emails)
    assert 0 < wide < len(emails)
    assert [(w["column"], w["rows"]) for w in first["warnings"]] == [("email", wide)]
    note = f"{wide} user(s) of the import files have their email in full-width"
    assert f"NOTE: {note}" in " ".join(proc.stdout.split())
    assert note in html.unescape((workspace.latest_run("acme-jp") / "report.html").read_text())
    path = workspace.root / "mappings" / "tenants" / "acme-jp.yaml"
    path.write_text(path.read_text().replace(
        "attributes:\n", "attributes:\n  email: {from: email, transform: [trim, nfkc, lower]}\n", 1))
    fixed = workspace.run("report", "--tenant", "acme-jp", extra_env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    report = workspace.report("acme-jp")
    assert report["warnings"] == [] and "NOTE" not in fixed.stdout
    # the same addresses, ordinary now; two that differed only by a full-width letter are one address,
    # so whole-tenant uniqueness now finds those duplicates (lower() had left the ａ of 'ａ' apart)
    normalised = _import_file_column(workspace.latest_run("acme-jp"), "email")
    assert set(normalised) == {e.replace("ａ", "a") for e in emails}
    assert len(emails) - len(normalised) == duplicates(report) - duplicates(first)


@pytest.mark.parametrize("blocked", ["chunks/chunk-00002.csv.tmp", "plan.json"])
def test_a_plan_stopped_while_writing_its_import_files_leaves_none(workspace: Workspace, blocked: str) -> None:
    """A plan that an error or Ctrl-C stops while it writes the import files, or its reports after them,
    removed its staging, and left the import files written so far (every valid user's email, phone and
    name) for good: without a staging or a plan.json, no later plan, load or report ever took them for
    its own to remove. Here the second file, or plan.json, cannot be written (a directory holds its name)."""
    from pipeline.cognito import CognitoTarget
    from pipeline.plan import plan_tenant
    from pipeline.settings import load_settings

    settings = load_settings(workspace.env)
    target = CognitoTarget.from_settings(settings.target, endpoint_url=settings.target.endpoint_url)
    run_dir = workspace.root / "runs" / "acme-jp" / "20250101T000000000000Z"
    (run_dir / blocked).mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        plan_tenant(settings, "acme-jp", target=target, run_id=run_dir.name)
    assert not (run_dir / "staging").exists()
    assert not list(run_dir.glob("chunks/chunk-*"))
    proc = workspace.run("migrate", "--tenant", "acme-jp")     # no later run removes them either
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(run_dir.glob("chunks/chunk-*"))
