"""The plan stage: what ``make report`` runs and ``make migrate`` runs first; it touches no import job.

``plan_tenant``: extract -> map -> validate -> stage -> whole-tenant duplicates -> chunk files ->
report. Stages hand over files on disk (``runs/<tenant>/<plan id>/``), so a later migrate resumes from
the ledger and the chunk files' sha256, not from memory. This module does not import boto3 or the
load stage: a plan against a saved pool snapshot loads neither.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from pipeline import chunk as chunking
from pipeline.ahead import ahead
from pipeline.arrowtext import key_hashes
from pipeline.contract import PoolContract
from pipeline.csvwrite import write_frame
from pipeline.db import SourceDB, open_source
from pipeline.errors import ConfigError, ContractError, ExtractError, LoadError, MappingError, TransientLoadError
from pipeline.extract import read_query, stream_partitions
from pipeline.mapping import (
    TenantMapping,
    apply_mapping,
    check_header,
    check_source_columns,
    load_mapping,
)
from pipeline.mapping.model import SHIPPED_IDENTITY, Identity, suggest
from pipeline.masking import scrub_values
from pipeline.reasons import REJECT_COLUMNS
from pipeline.report import QualityStats, build_plan_report, write_reports
from pipeline.settings import Settings
from pipeline.staging import Staging, claim, release, sweep_abandoned
from pipeline.validate import TenantValidator, decodable, no_control_characters

if TYPE_CHECKING:
    from pipeline.cognito import CognitoTarget

_STRING = pd.StringDtype("pyarrow")


class Progress(Protocol):
    """What the runner reports while it works; the CLI draws progress bars from it."""

    def rows(self, tenant: str, stage: str, n: int) -> None: ...
    def note(self, tenant: str, message: str) -> None: ...


class _Silent:
    def rows(self, tenant: str, stage: str, n: int) -> None:
        pass

    def note(self, tenant: str, message: str) -> None:
        pass


@dataclass(frozen=True)
class PlanResult:
    tenant: str
    run_dir: Path
    pool_id: str
    contract: PoolContract
    report: dict[str, Any]
    chunks: list[Any]
    source_rows: int
    rejected_ids: pd.Series          # unique legacy ids (string[pyarrow]) rejected by mapping or validation
    source_keys: np.ndarray | None = None   # sorted key_hashes of every source legacy id (8 bytes each)
    report_paths: dict[str, Path] = field(default_factory=dict)
    chunk_rows: int = 500_000        # the mapping's users per import file
    pruned_runs: int = 0             # earlier report and dry runs whose would-be import files this plan removed
    identity: Identity = SHIPPED_IDENTITY  # the mapping's attributes that tell one person's account from another's

    @property
    def gate_passed(self) -> bool:
        return bool(self.report["gate"]["passed"])


def resolve_pool(target: CognitoTarget, mapping: TenantMapping, settings: Settings) -> str:
    """The tenant's pool id: named in its mapping or the environment on AWS; found or created locally."""
    if settings.target.is_aws:
        pool_id = mapping.pool.get("user_pool_id") or settings.target.user_pool_id
        if not pool_id:
            raise ConfigError(f"No pool for tenant {mapping.tenant} on AWS: set pool.user_pool_id in its "
                              "mapping file or COGNITO_USER_POOL_ID.", tenant=mapping.tenant)
        return str(pool_id)
    local = mapping.pool.get("local")
    if not local:
        raise ConfigError(f"Tenant {mapping.tenant} has no pool.local definition for the local Cognito "
                          "service: add the CreateUserPool parameters under pool.local in its mapping file.",
                          tenant=mapping.tenant)
    return target.find_or_create_local_pool(dict(local), mapping.where(("pool", "local")))


def check_filters_used(mapping: TenantMapping, sql_dir: Path) -> None:
    """Every ``filters:`` name must be a parameter of the query: the query binds only the names it
    uses, so a filter it does not name (misspelt, or a query that lacks it) would select every user,
    and the users it was written to keep out would be imported."""
    filters = mapping.as_dict().get("filters") or {}
    if not filters:
        return
    used = SourceDB.bind_names(read_query(sql_dir / mapping.sql_file))
    problems = [f"{mapping.where(('filters', name))}: the query {mapping.sql_file} has no :{name}, so this "
                f"filter would keep no row out; use :{name} in the query's WHERE or remove the filter"
                f"{suggest(name, used)}" for name in filters if name not in used]
    if problems:
        raise MappingError(f"The filters of tenant '{mapping.tenant}' are not used by its query:", problems,
                           tenant=mapping.tenant)


def check_aws_pools(settings: Settings, tenants: list[str]) -> None:
    """On AWS, every tenant of the run needs a pool id, and a pool id starts with its region
    (``ap-northeast-1_AbC123``) while the run reaches one region (COGNITO_REGION): a tenant's pool in
    another would be looked for where it is not (online, a ResourceNotFoundException; offline, a minute
    of retries). Checked for every tenant before anything is called, so that a batch does not stop half
    way through, its first tenants imported."""
    if not settings.target.is_aws:
        return
    region = settings.target.region
    problems = []
    for tenant in tenants:
        mapping = load_mapping(settings.mappings_dir, tenant)
        named = mapping.pool.get("user_pool_id")
        pool_id = str(named or settings.target.user_pool_id or "")
        if not pool_id:
            problems.append(f"tenant {tenant}: no pool; set pool.user_pool_id in {settings.mappings_dir.name}/"
                            f"tenants/{tenant}.yaml (or COGNITO_USER_POOL_ID, for the tenants without one)")
            continue
        where = (f"pool.user_pool_id in {settings.mappings_dir.name}/tenants/{tenant}.yaml" if named
                 else "COGNITO_USER_POOL_ID")
        pool_region = pool_id.partition("_")[0] if "_" in pool_id else ""
        if pool_region and pool_region != region:
            problems.append(f"tenant {tenant}: pool {pool_id} ({where}) is in {pool_region}, and COGNITO_REGION "
                            f"is {region}: run it on its own with COGNITO_REGION={pool_region} "
                            f"(make migrate TENANT={tenant} COGNITO_REGION={pool_region}), or fix the pool id")
    if problems:
        raise ConfigError(f"Not every tenant has a pool in AWS region {region}, the one the run reaches:",
                          problems)


def check_local_pools(settings: Settings, tenants: list[str]) -> None:
    """On the local target, every tenant of the run needs a pool.local definition; one whose mapping names only
    an AWS pool (pool.user_pool_id) was meant for AWS, which COGNITO_TARGET alone selects. Checked for every
    tenant before anything is called, so that a batch does not stop half way through."""
    if settings.target.is_aws:
        return
    problems = []
    for tenant in tenants:
        mapping = load_mapping(settings.mappings_dir, tenant)
        named = mapping.pool.get("user_pool_id")
        if mapping.pool.get("local") or not named:
            continue
        problems.append(f"tenant {tenant}: {settings.mappings_dir.name}/tenants/{tenant}.yaml names only the AWS pool "
                        f"{named} (pool.user_pool_id), which a run reaches only with COGNITO_TARGET=aws (and "
                        "COGNITO_REGION, COGNITO_LOGS_ROLE_ARN, --yes); to try the tenant on the local service, add "
                        "its CreateUserPool parameters under pool.local")
    if problems:
        raise ConfigError("The target is the local Cognito service (COGNITO_TARGET is not aws), and not every tenant "
                          "has a local pool:", problems)


def _check_snapshot_pool(contract: PoolContract, path: Path, mapping: TenantMapping, settings: Settings) -> None:
    """A snapshot must describe the tenant's own pool: its id when one is named (mapping, or the
    environment on AWS), else the local pool's PoolName. Another pool's rules would judge the rows."""
    named_id = mapping.pool.get("user_pool_id") or (settings.target.user_pool_id if settings.target.is_aws else None)
    local_name = (mapping.pool.get("local") or {}).get("PoolName")
    if named_id:
        wrong = str(named_id) != contract.user_pool_id
        want = f"pool {named_id}"
    else:
        wrong = bool(local_name and contract.pool_name and str(local_name) != contract.pool_name)
        want = f"the local pool {local_name}"
    if wrong:
        raise ContractError(
            f"Pool contract snapshot {path} describes pool {contract.user_pool_id} "
            f"({contract.pool_name or 'no name'}), "
            f"but tenant {mapping.tenant}'s mapping names {want}: save that pool's contract with "
            f"`python -m pipeline save-contract --tenant {mapping.tenant} --out FILE`, or pass the right "
            "snapshot.", tenant=mapping.tenant)


def read_contract(target: CognitoTarget, pool_id: str) -> PoolContract:
    """The pool's rules, read live: GetCSVHeader and DescribeUserPool. A pool that cannot be read (a
    wrong id or region, no permission, no connection) is a ContractError: nothing was loaded yet."""
    try:
        header = target.get_csv_header(pool_id)
        pool = target.describe_user_pool(pool_id)
    except TransientLoadError as exc:      # unreachable or throttled: its message says what to check
        raise ContractError(f"The pool {pool_id} could not be read: {exc.message}") from None
    except LoadError as exc:               # refused: a pool id, region or permission of the user's
        code = getattr(exc, "code", "")
        hint = ("Check the pool id (pool.user_pool_id in the tenant's mapping file, or COGNITO_USER_POOL_ID) "
                "and the region (COGNITO_REGION): the id must name a pool of that region."
                if code in ("ResourceNotFoundException", "UserNotFoundException") else
                "Check that the credentials may call cognito-idp:GetCSVHeader and DescribeUserPool on it.")
        raise ContractError(f"The pool {pool_id} could not be read: {exc.message.rstrip('.')}. {hint}") from None
    return PoolContract.from_responses({"UserPoolId": pool_id, "CSVHeader": header}, {"UserPool": pool})


def plan_tenant(settings: Settings, tenant: str, *, target: CognitoTarget | None,
                contract_snapshot: Path | None = None, progress: Progress | None = None,
                run_id: str | None = None, purpose: str = "migrate") -> PlanResult:
    """Everything up to the import files and the data-quality report, touching no import job.

    ``purpose`` ("report" or "migrate") is kept in plan.json. The would-be import files of the tenant's
    earlier report runs and dry runs are removed once this plan has written its own (``_prune_report_files``).
    """
    progress = progress or _Silent()
    mapping = load_mapping(settings.mappings_dir, tenant)
    check_filters_used(mapping, settings.sql_dir)
    if contract_snapshot is not None:
        contract = PoolContract.from_snapshot(contract_snapshot)
        _check_snapshot_pool(contract, contract_snapshot, mapping, settings)
        pool_id = contract.user_pool_id
    else:
        assert target is not None
        pool_id = resolve_pool(target, mapping, settings)
        contract = read_contract(target, pool_id)
    problems = contract.problems()
    if problems:
        raise ContractError(f"Pool {pool_id} cannot take an import: " + "; ".join(problems), tenant=tenant)
    check_header(mapping, list(contract.csv_header), required=contract.required_columns,
                 verified_flags=contract.auto_verified_flags,
                 sign_in={"UsernameAttributes": sorted(contract.username_attributes),
                          "AliasAttributes": sorted(contract.alias_attributes)},
                 mfa=contract.mfa)

    run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = settings.runs_dir / tenant / run_id
    staging = run_dir / "staging"
    run_dir.mkdir(parents=True, exist_ok=True)
    # staged rows, and import files it was writing, that a killed plan of this tenant left behind
    sweep_abandoned(run_dir.parent, also=("chunks",))
    owner = claim(staging)
    staged = Staging(staging)
    try:   # staged rows hold PII: removed whatever ends the plan (an error, Ctrl-C; SIGKILL: the next sweep)
        for private in (settings.runs_dir, run_dir.parent, run_dir):   # staged rows and chunks hold PII
            private.chmod(0o700)
        contract.to_snapshot(run_dir / "contract.json")
        rejects_path = run_dir / "rejects.csv"
        _write_rejects(rejects_path, pd.DataFrame(columns=REJECT_COLUMNS), header=True)
        validator = TenantValidator(contract, mapping.duplicates, rows=staged,
                                    invalid_optional=mapping.invalid_optional)
        dropped_path = run_dir / "dropped.csv"   # policies.invalid_optional: drop; made at the first value dropped
        stats = QualityStats()
        source_rows = 0
        rejected: list[pd.Series] = []   # legacy ids as string[pyarrow]: ~10 bytes each, not a Python set
        keys = _PrimaryKeys(mapping, settings.sql_dir / mapping.sql_file)
        with open_source(settings.source_url) as source, closing(stream_partitions(
                source, settings.sql_dir / mapping.sql_file, mapping.params, mapping.partition_rows)) as parts:
            # closing(): a mistake found mid-stream ends the COPY before the connection closes
            prepare = validator.prepare   # the frame the checks read, built on the mapping thread too

            def map_partition(frame: pd.DataFrame) -> tuple[int, pd.DataFrame, pd.DataFrame]:
                check_source_columns(mapping, list(frame.columns))   # a clear error before keys.add reads the key
                keys.add(frame)
                mapped = apply_mapping(mapping, frame)
                return len(frame), mapped.rejects, prepare(mapped.frame)   # the mapped frame goes here

            # partition k+1 is mapped and prepared (mostly Arrow kernels, no GIL) while partition k is validated
            for rows, mapping_rejects, prepared in ahead(parts, map_partition, name="map"):
                checked = validator.validate(prepared, prepared=True)
                rejects = pd.concat([mapping_rejects, checked.rejects], ignore_index=True)
                del mapping_rejects, prepared   # each stage's input is let go once the next has it (peak RSS)
                _write_rejects(rejects_path, rejects)
                if checked.dropped is not None and len(checked.dropped):
                    _write_rejects(dropped_path, checked.dropped, header=not dropped_path.exists())
                    stats.add_dropped(checked.dropped)
                rejected.append(rejects["legacy_id"].astype(_STRING))
                stats.add_partition(rows, len(checked.valid), rejects)
                staged.write(checked.valid)
                source_rows += rows
                progress.rows(tenant, "validated", rows)
                del checked, rejects   # not alive while the next partition is read

        # the primary keys' sort (numpy, no GIL) on a second core while the duplicates resolve: ~0.1 s
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="keys") as worker:
            unique_keys = worker.submit(keys.check_unique)
            duplicates = validator.duplicate_rejects()
            losers = validator.duplicate_rows()
            source_keys = unique_keys.result()
        del validator   # its whole-tenant key store (tens of MB at 1M rows) is not needed for the chunks
        _write_rejects(rejects_path, duplicates)
        stats.remove_valid(duplicates)
        rejected.append(duplicates["legacy_id"].astype(_STRING))
        rejected_ids = pd.Series(pd.concat(rejected, ignore_index=True).unique(), dtype=_STRING)

        chunks = chunking.write_chunks(_warned(staged.frames(losers), stats), list(contract.csv_header),
                                       run_dir / "chunks", chunk_rows=mapping.chunk_rows,
                                       canary_rows=mapping.canary_rows)
        report = build_plan_report(
            tenant=tenant, run_id=run_id, stats=stats, contract_fingerprint=contract.fingerprint,
            pool=_pool_summary(contract), mapping_digest=mapping.digest, mapping=_reported_mapping(mapping.as_dict()),
            reject_threshold=mapping.reject_threshold,
            chunks=[{"name": c.name, "rows": c.rows, "bytes": c.bytes, "sha256": c.sha256} for c in chunks],
            files={"rejects": str(rejects_path), "chunks_dir": str(run_dir / "chunks"),
                   **({"dropped": str(dropped_path)} if dropped_path.exists() else {})},
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"))
        report["previous_contract"] = _previous_contract(run_dir, contract.fingerprint)
        paths = write_reports(report, run_dir)
        (run_dir / "plan.json").write_text(json.dumps(
            {"tenant": tenant, "run_id": run_id, "pool_id": pool_id, "fingerprint": contract.fingerprint,
             "mapping_digest": mapping.digest, "source_rows": source_rows, "rejected": len(rejected_ids),
             "chunks": report["chunks"], "purpose": purpose}, indent=2))
    except BaseException:
        # the import files written so far (PII): without a plan.json, once the staging is gone, no later
        # plan, load or report takes them for its own
        shutil.rmtree(run_dir / "chunks", ignore_errors=True)
        raise
    finally:
        release(staging, owner)
    pruned = _prune_report_files(run_dir)
    return PlanResult(tenant=tenant, run_dir=run_dir, pool_id=pool_id, contract=contract, report=report,
                      chunks=chunks, source_rows=source_rows, rejected_ids=rejected_ids, source_keys=source_keys,
                      report_paths=paths, chunk_rows=mapping.chunk_rows, pruned_runs=pruned,
                      identity=mapping.identity)


def _warned(frames: Iterator[pd.DataFrame], stats: QualityStats) -> Iterator[pd.DataFrame]:
    """``frames`` (the import files' users), each counted by ``stats.add_warnings`` on its way."""
    for frame in frames:
        stats.add_warnings(frame)
        yield frame


class _PrimaryKeys:
    """The legacy primary key must name one user: every outcome, reject and ledger row is keyed by it,
    so a NULL or repeated key would merge two users' outcomes and one would vanish from the accounting,
    and a key that is not text (a binary UUID, read with U+FFFD for its bytes) may repeat once read.
    Keys are kept as 64-bit hashes (8 bytes a row; a false repeat is ~3e-8 likely at 1M rows)."""

    def __init__(self, mapping: TenantMapping, sql_path: Path) -> None:
        self.mapping, self.sql_path = mapping, sql_path
        self.hashes: list[np.ndarray] = []

    def add(self, frame: pd.DataFrame) -> None:
        pk = frame[self.mapping.primary_key].astype(_STRING)
        empty = pk.isna() | pk.str.strip().eq("")
        if empty.any():
            raise ExtractError(
                f"{int(empty.sum())} row(s) of {self.sql_path.name} for tenant {self.mapping.tenant} have no "
                f"value in the primary key column '{self.mapping.primary_key}' (source.primary_key): every "
                "user needs its legacy id. Fix the query or the data.", tenant=self.mapping.tenant)
        lost = ~(decodable(pk) & no_control_characters(pk))
        if lost.any():
            key = self.mapping.primary_key
            raise ExtractError(
                f"{int(lost.sum())} row(s) of {self.sql_path.name} for tenant {self.mapping.tenant} have a "
                f"primary key '{key}' (source.primary_key) that is not text: bytes that are not UTF-8, or "
                "control characters, as a UUID or a hash kept in a BINARY, VARBINARY or BLOB column reads. "
                "Such a key could name two users once read as text. Select it as text in the SQL file: "
                f"LOWER(HEX({key})) AS {key} on MySQL/MariaDB (or BIN_TO_UUID({key}) AS {key} on MySQL 8), "
                f"lower(hex({key})) AS {key} on SQLite.",
                tenant=self.mapping.tenant)
        self.hashes.append(key_hashes(pk))

    def check_unique(self) -> np.ndarray:
        """The sorted key hashes of every source row (``key_hashes`` of the ids); an ExtractError for a repeat."""
        if not self.hashes:
            return np.zeros(0, dtype=np.uint64)
        hashes = np.concatenate(self.hashes)
        hashes.sort()
        again = hashes[1:] == hashes[:-1]
        if again.any():
            # values seen more than once: each run of equal hashes counts once
            repeated = int(np.count_nonzero(again[1:] & ~again[:-1]) + again[0])
            raise ExtractError(
                f"The primary key column '{self.mapping.primary_key}' (source.primary_key) is not unique in "
                f"the rows {self.sql_path.name} returns for tenant {self.mapping.tenant}: {repeated} value(s) "
                "appear more than once. Each legacy id must name one user; fix the query (a join that "
                "repeats rows?) or name the right key column.", tenant=self.mapping.tenant)
        return hashes


LOAD_FILE = "load.json"   # a migrate run's load settings (a dry run's too): {"keep_files": bool, "dry_run": bool}


def _prune_report_files(run_dir: Path) -> int:
    """Remove the import files of the tenant's earlier report runs and dry runs (those not asked to keep
    them); return how many runs had some.

    A report writes would-be import files (every valid user's email, phone and name) each time it
    runs, and a team cleaning its data runs it again and again: kept, they pile up, 130 MB of PII per
    run at 1M users. They are only ever a preview, rebuilt by the next plan, as a dry run's are; the
    reports, rejects and plan.json of those runs stay. Other runs of a migrate are not touched (their
    load removes its files as each job is harvested, or keeps them on request), nor is a run whose plan
    is still under way.
    """
    def a_preview(earlier: Path) -> bool:
        if json.loads((earlier / "plan.json").read_text()).get("purpose") == "report":
            return True
        load = json.loads((earlier / LOAD_FILE).read_text())
        return load.get("dry_run") is True and load["keep_files"] is False

    return prune_earlier_import_files(run_dir, a_preview)


def prune_earlier_import_files(run_dir: Path, prunable: Callable[[Path], bool]) -> int:
    """Remove the ``chunks/`` of the tenant's runs before ``run_dir`` that hold files and for which
    ``prunable(run directory)`` is true (a run whose manifest it cannot read, ``OSError``, ``ValueError``,
    ``KeyError``, ``TypeError`` or ``AttributeError``, is kept); return how many. A run whose plan is still
    under way (its staging) is never touched."""
    pruned = 0
    for earlier in sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p.name < run_dir.name):
        chunks = earlier / "chunks"
        if (earlier / "staging").exists() or not chunks.is_dir() or not any(chunks.iterdir()):
            continue
        try:
            if not prunable(earlier):
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError):   # AttributeError: JSON, not an object
            continue
        shutil.rmtree(chunks, ignore_errors=True)
        pruned += 1
    return pruned


def _previous_contract(run_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The tenant's latest earlier plan, when its pool contract differs from this one: a pool changed
    between two runs (attributes, required, alias or MFA settings) must not go unnoticed."""
    for earlier in sorted((p for p in run_dir.parent.iterdir() if p.is_dir() and p.name < run_dir.name),
                          reverse=True):
        try:
            plan = json.loads((earlier / "plan.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(plan, dict):   # edited by hand: JSON, but no manifest
            continue
        if plan.get("fingerprint") == fingerprint:
            return None
        return {"run_id": earlier.name, "fingerprint": plan.get("fingerprint"), "changed": True}
    return None


def _reported_mapping(merged: dict[str, Any]) -> dict[str, Any]:
    """The merged mapping as the report shows it: the values of its filters and SQL parameters scrubbed,
    since a filter may name a user (``exclude: [ceo@example.com]``); column names and rules are not PII."""
    source = merged.get("source")
    if isinstance(source, dict) and "params" in source:
        merged["source"] = {**source, "params": scrub_values(source["params"])}
    if "filters" in merged:
        merged["filters"] = scrub_values(merged["filters"])
    return merged


def _pool_summary(contract: PoolContract) -> dict[str, Any]:
    return {"id": contract.user_pool_id, "name": contract.pool_name, "header": list(contract.csv_header),
            "auto_verified": sorted(contract.auto_verified), "alias_attributes": sorted(contract.alias_attributes),
            "username_attributes": sorted(contract.username_attributes), "mfa": contract.mfa,
            "case_sensitive": contract.case_sensitive}


def _write_rejects(path: Path, rejects: pd.DataFrame, header: bool = False) -> None:
    with path.open("wb" if header else "ab") as handle:
        write_frame(handle, rejects.reindex(columns=REJECT_COLUMNS), header=header)
