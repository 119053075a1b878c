"""Harvest a finished import job: its log lines mapped back to source users, confirmed in the pool.

Each ``[SUCCEEDED|SKIPPED|FAILED] Line Number N - msg`` line of the job's CloudWatch stream is row N
of the chunk's keys file (first data row = 1, U6); its text is scrubbed of the addresses and phone
numbers it may quote (``scrub_text``). Line numbers alone are not trusted: a sample of
the users spread over the file (and every user the log does not mention) is looked up in the pool.
``Harvester`` is the part of the load stage's job runner (``pipeline.load._Loader``) that does this;
it uses the runner's target, ledger, policy, pool and event hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.chunk import ChunkInfo, attrs_digest, canonical_attributes, compared_attributes, read_chunk, read_keys
from pipeline.errors import LoadError
from pipeline.ledger import Ledger
from pipeline.mapping.model import Identity
from pipeline.masking import scrub_text
from pipeline.poolusers import get_users, users_frame, wanted_users
from pipeline.reasons import IN_POOL, Outcome

LOG_LINE = r"^\[(SUCCEEDED|SKIPPED|FAILED)\] Line Number (\d+) - (.*)$"
_LOG_OUTCOME = {
    "SUCCEEDED": Outcome.IMPORTED.value,
    "SKIPPED": Outcome.SKIPPED.value,
    "FAILED": Outcome.FAILED.value,
}
MSG_NOT_IN_POOL = "The log reported success but the user is not in the pool."
MSG_SKIPPED_NOT_IN_POOL = ("Skipped by Cognito for an account already under its username, but the pool has no "
                           "account under it now (deleted since?): not imported; rerun with --retry-failed")


@dataclass(frozen=True)
class ChunkResult:
    name: str
    sha256: str
    rows: int
    canary: bool
    job_id: str | None
    status: str  # final job status, or "done-before"
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    completion_message: str | None = None
    failure_reasons: tuple[tuple[str, int], ...] = ()
    unconfirmed: int = 0  # imported per log, but the pool disagrees on status/attributes
    unlogged: int = 0  # users with no log line, settled by looking at the pool
    resumed: str = ""  # "", "adopted", "harvested", "started-created"
    jobs_created: int = 0
    skipped_as_someone_else: int = 0  # of ``failed``: skipped by Cognito under another person's account

    @property
    def failed_by_skips(self) -> bool:
        """The job ended Failed only because users were already in the pool (U4): Cognito failed none."""
        return (self.status == "Failed" and self.skipped + self.skipped_as_someone_else > 0
                and self.failed == self.skipped_as_someone_else)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunk": self.name,
            "sha256": self.sha256,
            "rows": self.rows,
            "canary": self.canary,
            "job_id": self.job_id,
            "status": self.status,
            "imported": self.imported,
            "skipped": self.skipped,
            "failed": self.failed,
            "completion_message": self.completion_message,
            "failure_reasons": dict(self.failure_reasons),
            "unconfirmed": self.unconfirmed,
            "unlogged": self.unlogged,
            "resumed": self.resumed,
            "jobs_created": self.jobs_created,
        }


class Harvester:
    """Mixed into the job runner, which provides target, ledger, policy, tenant, pool_id, progress,
    pool_size, key_attribute and ``_event``."""

    target: Any
    ledger: Ledger
    policy: Any
    tenant: str
    pool_id: str
    progress: Any
    pool_size: int
    pool_name: str
    key_attribute: str | None
    identity: Identity        # a skipped user whose account holds another value in one is someone else's
    fold_case: bool           # the pool takes case variants of a username as the same user
    created: dict[str, int]   # chunk sha256 -> jobs created in this run

    def _event(self, kind: str, message: str, **info: Any) -> None:
        raise NotImplementedError   # the job runner's

    def _discard(self, chunk: ChunkInfo) -> None:
        """A chunk's files once no job needs them (harvested, or done before): removed unless kept."""
        if not self.policy.keep_files:
            chunk.csv_path.unlink(missing_ok=True)
            chunk.keys_path.unlink(missing_ok=True)

    # ---- harvest ----------------------------------------------------------------------------------

    def _harvest(
        self, chunk: ChunkInfo, jobs: list[dict[str, Any]], final: dict[str, Any], resumed: str
    ) -> ChunkResult:
        if not chunk.keys_path.exists() or not chunk.csv_path.exists():
            raise LoadError(
                f"{chunk.name}: its files are gone ({chunk.csv_path.parent}); they are needed to "
                "map the job's log to users. Plan again and rerun.",
                tenant=self.tenant,
                chunk=chunk.name,
                job_id=str(final["JobId"]),
            )
        keys = read_keys(chunk.keys_path)
        logged = self._read_logs(jobs)
        merged = keys.merge(logged, on="line", how="left")
        unmatched = int((~logged["line"].isin(keys["line"])).sum()) if len(logged) else 0
        if unmatched:
            self._event(
                "log_unmatched",
                f"{chunk.name}: {unmatched} log line(s) name a row the file does not have.",
                chunk=chunk.name,
            )
        final_id = str(final["JobId"])
        merged["job_id"] = merged["job_id"].fillna(final_id)
        expected = read_chunk(chunk.csv_path)
        merged, digests = self._confirm(merged, expected, final)
        merged["attrs_digest"] = digests
        imported = int(merged["outcome"].eq(Outcome.IMPORTED.value).sum())
        skipped = int(merged["outcome"].eq(Outcome.SKIPPED.value).sum())
        failed_rows = merged[merged["outcome"].eq(Outcome.FAILED.value)]
        someone_else = int(merged["_someone_else"].sum())
        reasons = tuple((str(m), int(n)) for m, n in failed_rows["message"].value_counts().items())
        unconfirmed = int((merged["outcome"].eq(Outcome.IMPORTED.value) & merged["confirmed"].eq(0)).sum())
        status = str(final.get("Status"))
        state = None
        if status in ("Succeeded", "Failed"):
            state = "verified" if self.policy.verify and unconfirmed == 0 else "harvested"
            # a job Failed only by skips (U4) left every user with an outcome and Cognito failed none: it is
            # done (users it skipped under another person's account count as failed, but a new job of the
            # chunk would only skip them again)
            cognito_failed, cognito_skipped = len(failed_rows) - someone_else, skipped + someone_else
            state = "failed" if status == "Failed" and (cognito_failed or not cognito_skipped) else state
        # the outcomes and the chunk's state in one transaction: a chunk is never left with its users'
        # outcomes stored but not done (a rerun would send its failed users again as its remainder)
        self.ledger.record_outcomes(self.tenant, self.pool_id, merged,
                                    chunk_state=None if state is None else (chunk.sha256, state, final_id))
        if state is not None and state != "failed":   # a failed chunk is retried: its files stay
            self._discard(chunk)
        if hasattr(self.progress, "rows"):
            self.progress.rows(self.tenant, "imported", imported)
        self._event(
            "chunk_harvested",
            f"{chunk.name}: job {final_id} {status}: imported {imported}, skipped "
            f"{skipped}, failed {len(failed_rows)}.",
            chunk=chunk.name,
            job_id=final_id,
        )
        return ChunkResult(
            chunk.name,
            chunk.sha256,
            chunk.rows,
            chunk.canary,
            final_id,
            status,
            imported,
            skipped,
            len(failed_rows),
            final.get("CompletionMessage"),
            reasons,
            unconfirmed,
            int(merged["_unlogged"].sum()),
            resumed,
            self.created.get(chunk.sha256, 0),
            someone_else,
        )

    def _read_logs(self, jobs: list[dict[str, Any]]) -> pd.DataFrame:
        """One row per logged line number: outcome, message, job_id. A success in any job wins."""
        frames = []
        for order, job in enumerate(jobs):
            messages = self.target.job_log_events(
                self.pool_id, self.pool_name, str(job["JobId"]), str(job.get("JobName", ""))
            )
            if not messages:
                continue
            parsed = pd.Series(messages, dtype="string").str.extract(LOG_LINE).dropna()
            parsed.columns = ["kind", "line", "message"]
            # Cognito's text may quote the user's values: each distinct message is scrubbed once
            said = parsed["message"].unique()
            parsed["message"] = parsed["message"].map(dict(zip(said, map(scrub_text, said), strict=True)))
            parsed["line"] = parsed["line"].astype("int64")
            parsed["order"] = order
            parsed["job_id"] = str(job["JobId"])
            frames.append(parsed)
        if not frames:
            return pd.DataFrame(
                {
                    "line": pd.Series([], dtype="int64"),
                    "outcome": pd.Series([], dtype="string"),
                    "message": pd.Series([], dtype="string"),
                    "job_id": pd.Series([], dtype="string"),
                }
            )
        logged = pd.concat(frames, ignore_index=True)
        logged["won"] = logged["kind"].eq("SUCCEEDED").astype(int)
        logged = logged.sort_values(["line", "won", "order"], kind="stable").drop_duplicates(
            "line", keep="last"
        )
        logged["outcome"] = logged["kind"].map(_LOG_OUTCOME)
        return logged[["line", "outcome", "message", "job_id"]].astype(
            {"outcome": "string", "message": "string", "job_id": "string"}
        )

    def _confirm(
        self, merged: pd.DataFrame, expected: pd.DataFrame, final: dict[str, Any]
    ) -> tuple[pd.DataFrame, pd.Series]:
        """Settle users without a log line and confirm imported users against the pool."""
        merged = merged.copy()
        merged["_unlogged"] = merged["outcome"].isna()
        merged["_someone_else"] = False
        attrs = compared_attributes(list(expected.columns))
        canon = canonical_attributes(expected, attrs)
        digests = attrs_digest(canon)
        check = merged["outcome"].isna() | merged["outcome"].isin(IN_POOL)
        merged["confirmed"] = 0
        merged["sub"] = pd.Series([None] * len(merged), dtype="object")
        # every skipped user is looked up: its sub is mapped only when the account is this user's
        logged_skipped = merged["outcome"].eq(Outcome.SKIPPED.value).fillna(False)
        if not (self.policy.verify or merged["_unlogged"].any() or logged_skipped.any()):
            return merged, digests
        looked = check & (self._sample(len(merged)) | merged["_unlogged"] | logged_skipped)
        wanted = merged.loc[looked, "username"].tolist()
        pool = self._fetch_users(wanted, attrs)
        exists = merged["username"].isin(pool.index)
        merged["sub"] = merged["username"].map(pool["sub"]).where(exists, None) if len(pool) else None
        pool_canon = (
            canonical_attributes(pool.reindex(merged["username"]).reset_index(drop=True), attrs, expected)
            if len(pool)
            else pd.Series([""] * len(merged))
        )
        status = merged["username"].map(pool["status"]) if len(pool) else pd.Series([None] * len(merged))
        attrs_ok = exists & pool_canon.eq(canon).fillna(False)
        status_ok = status.isin(list(self.policy.expected_status))
        # users the log does not mention: the pool decides (created by this job, or there before it)
        unlogged = merged["_unlogged"]
        start = epoch_seconds(final.get("StartDate")) - 0.001 if final.get("StartDate") else 0.0  # ms precision
        created = merged["username"].map(pool["created"]) if len(pool) else pd.Series([0.0] * len(merged))
        new_user = exists & created.fillna(0).ge(start)
        merged.loc[unlogged & new_user, ["outcome", "message"]] = [
            Outcome.IMPORTED.value,
            "No log line; the user was created by the job.",
        ]
        merged.loc[unlogged & exists & ~new_user, ["outcome", "message"]] = [
            Outcome.SKIPPED.value,
            "No log line; the user already existed.",
        ]
        gone = (
            f"No log line and the user is not in the pool (job {final.get('Status')}: "
            f"{final.get('CompletionMessage') or 'no message'})."
        )
        merged.loc[unlogged & ~exists, ["outcome", "message"]] = [Outcome.FAILED.value, gone]
        # imported users must be in the pool with the expected status and attributes
        imported = merged["outcome"].eq(Outcome.IMPORTED.value).fillna(False)
        merged.loc[imported & looked & ~exists, ["outcome", "message"]] = [Outcome.FAILED.value, MSG_NOT_IN_POOL]
        imported = imported & exists
        skipped = merged["outcome"].eq(Outcome.SKIPPED.value).fillna(False)
        differs = _other_person(expected, pool.reindex(merged["username"]) if len(pool) else None, self.identity)
        someone_else = skipped & exists & differs.ne("").to_numpy()
        if someone_else.any():
            merged.loc[someone_else, "message"] = [
                f"Skipped by Cognito, but its username is another account's in the pool ({d} "
                f"{'differ' if ' and ' in d else 'differs'}): this "
                "user was not imported; rename one of the two (or delete that account), then rerun with "
                "--retry-failed" for d in differs[someone_else.to_numpy()]]
            merged.loc[someone_else, "outcome"] = Outcome.FAILED.value
            merged.loc[someone_else, "_someone_else"] = True
            merged.loc[someone_else, "sub"] = None
            self._event(
                "skipped_as_someone_else",
                f"{int(someone_else.sum())} user(s) skipped as already in the pool are under a username "
                "another account holds (their email, legacy id or tenant id differs): counted as failed, not mapped "
                "to that account's sub.",
                job_id=str(final["JobId"]),
            )
            skipped = skipped & ~someone_else
        # skipped for an account under the name that is gone by now (deleted since the job): in no
        # account, so failed (--retry-failed imports it), not counted in the pool for every later run
        vanished = skipped & ~exists
        merged.loc[vanished, ["outcome", "message"]] = [Outcome.FAILED.value, MSG_SKIPPED_NOT_IN_POOL]
        skipped = skipped & exists
        merged["confirmed"] = ((imported & attrs_ok & status_ok) | skipped).astype(int)   # skipped: in the pool
        bad = imported & looked & ~(attrs_ok & status_ok)
        if bad.any():
            self._event(
                "unconfirmed",
                f"{int(bad.sum())} imported user(s) differ in the pool from their import "
                "file (status or attributes).",
                job_id=str(final["JobId"]),
            )
        return merged, digests

    def _sample(self, n: int) -> pd.Series:
        """Rows to look up at harvest: every row, or ``verify_sample`` rows spread evenly over the file."""
        limit = self.policy.verify_sample
        if not limit or n <= limit:
            return pd.Series(True, index=range(n))
        picked = np.zeros(n, dtype=bool)
        picked[np.linspace(0, n - 1, limit).astype(int)] = True
        return pd.Series(picked, index=range(n))

    def _fetch_users(self, usernames: list[str], attrs: list[str]) -> pd.DataFrame:
        """username -> sub, status, created (epoch), and every attribute in ``attrs``."""
        if not usernames:
            return pd.DataFrame(columns=["sub", "status", "created", *attrs])
        one_by_one = (
            len(usernames) < self.policy.fetch_one_by_one_below
            if self.policy.fetch_one_by_one_below
            else len(usernames) <= max(self.pool_size / 60, self.policy.verify_sample)
        )
        if one_by_one:
            records = get_users(lambda name: self.target.admin_get_user(self.pool_id, name), usernames,
                                self.policy.lookup_threads)
        else:
            keep = wanted_users(set(usernames), self.key_attribute, self.fold_case)
            records = keep(self.target.list_users(self.pool_id))
        return users_frame(records, attrs, self.key_attribute)


def _other_person(expected: pd.DataFrame, found: pd.DataFrame | None, identity: Identity) -> pd.Series:
    """Per import row, the identity attributes (``identity``, compared case-insensitively) whose value in
    the file and in the pool's account of that username are both non-empty and differ, joined with
    " and "; "" where none does (or the account is absent). An account that holds the row's own legacy
    id (and no other tenant) is the user's whatever its email: an earlier import of the user, say, whose
    email changed in the legacy database since."""
    differs = pd.Series([""] * len(expected), dtype=object)
    if found is None:
        return differs
    hits: dict[str, np.ndarray] = {}
    own = np.zeros(len(expected), dtype=bool)
    for column in identity.attributes:
        if column not in expected.columns or column not in found.columns:
            continue
        mine = expected[column].fillna("").astype(str).str.strip().str.casefold().to_numpy()
        theirs = found[column].fillna("").astype(str).str.strip().str.casefold().to_numpy()
        hits[column] = (mine != "") & (theirs != "") & (mine != theirs)
        if column == identity.legacy_id:
            own = (mine != "") & (mine == theirs)
    if identity.tenant in hits:
        own &= ~hits[identity.tenant]
    for column, hit in hits.items():
        hit = hit & ~own
        differs[hit] = [f"{d} and {column}" if d else column for d in differs[hit]]
    return differs


def epoch_seconds(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)
