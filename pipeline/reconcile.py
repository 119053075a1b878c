"""Every source user in exactly one outcome, confirmed against the pool.

``source_rows = imported + skipped + rejected + failed``, and no user in two outcomes (a rejected id
must not also have a load outcome). With a target, every imported user is looked up in the pool
(ListUsers, paged and rate-limited, or AdminGetUser when few): it must exist, have the expected status
(RESET_REQUIRED, fact 20), the ``sub`` recorded at harvest and the attributes of its import row (the
digest kept in the ledger). ``write_sub_mapping`` gives the application team ``legacy_id,username,sub``
to rewrite its foreign keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.arrowtext import key_hashes
from pipeline.chunk import attrs_digest, canonical_attributes, compared_attributes
from pipeline.csvwrite import write_frame
from pipeline.ledger import Ledger
from pipeline.poolusers import case_insensitive, get_users, key_attribute_of, users_frame, wanted_users
from pipeline.reasons import IN_POOL, Outcome

RECHECK_MISSING = 1_000   # wanted users absent from the listing that are looked up one by one
SUB_DIFFERS = "sub differs from the one recorded"
NOT_IN_POOL = "not in the pool"   # the problem label of an imported user the check does not find
# the ledger's message of a user this plan rejected and the check then found deleted from the pool: it is
# failed there from then on, so that a later plan that takes the user again imports it (or --retry-failed)
REMOVED_AFTER_REJECTION = ("In the pool after its import, then deleted from it once the plan rejected the "
                           "user: not in the pool.")


@dataclass(frozen=True)
class Accounting:
    tenant: str
    source_rows: int
    imported: int
    skipped: int
    rejected: int
    failed: int
    missing: int = 0  # source users without any outcome (e.g. a run stopped early)
    double_counted: int = 0  # rejected ids that also carry a load outcome
    double_in_pool: int = 0  # of those: imported or skipped, so in the pool
    not_in_source: int = 0   # users with a load outcome whose legacy id the source no longer returns
    not_in_source_in_pool: int = 0  # of those: imported or skipped, so in the pool
    failed_by_message: tuple[tuple[str, int], ...] = ()
    checked: int = 0  # imported users looked up in the pool
    unconfirmed: int = 0  # of those: absent, wrong status, other sub or other attributes
    unconfirmed_by_problem: tuple[tuple[str, int], ...] = ()
    changed_since: int = 0  # imported users an earlier run confirmed whose status/attributes/sub changed since
    gone_since: int = 0     # imported users an earlier run confirmed who are no longer in the pool
    signed_in_since: int = 0  # imported users not confirmed before who have reset their password since
    accepted_missing: int = 0  # imported users not found in the pool, accepted as deleted there (--accept-missing)
    rejected_after_failing: int = 0   # rejected users an earlier job failed (or removed before): rejected
    rejected_and_removed: int = 0     # rejected users an earlier run put in the pool, deleted from it since

    @property
    def accounted(self) -> int:
        return self.imported + self.skipped + self.rejected + self.failed

    @property
    def notes(self) -> list[str]:
        """What the accounting leaves out but a person should know (it does not make it fail)."""
        notes = []
        if self.not_in_source:
            notes.append(
                f"{self.not_in_source} user(s) with an outcome from an earlier run are no longer in the source "
                f"(deleted from the legacy database, or filtered out since); {self.not_in_source_in_pool} of them "
                "are in the pool. They are left out of this accounting and stay in outcomes.csv and "
                "legacy-id-to-sub.csv; delete them from the pool (AdminDeleteUser) if they must go.")
        if self.changed_since:
            notes.append(
                f"{self.changed_since} user(s) imported (or met) and confirmed in the pool by an earlier run have "
                "changed there since (status, attributes or sub: a password reset or a profile edit, say). That "
                "is the pool's own life after the import, not a failed import: they stay confirmed, and "
                "legacy-id-to-sub.csv keeps the sub confirmed then.")
        if self.gone_since:
            notes.append(
                f"{self.gone_since} user(s) imported (or met) and confirmed in the pool by an earlier run are no "
                "longer there (deleted since). They are not imported again; outcomes.csv and legacy-id-to-sub.csv "
                "keep them as they were, with the sub they had.")
        if self.signed_in_since:
            notes.append(
                f"{self.signed_in_since} imported user(s) have already reset their password (status CONFIRMED, "
                "not RESET_REQUIRED): each is still under its username, and under the sub recorded at the import "
                "where the load looked it up; what it holds now is the user's own, so it is not compared with the "
                "import file. They count as confirmed.")
        if self.rejected_after_failing:
            notes.append(
                f"{self.rejected_after_failing} user(s) this plan rejects are not in the pool, though an earlier "
                "run loaded them (Cognito failed them in its job, or they were deleted from the pool once "
                "rejected): they count as rejected, with this plan's reasons in outcomes.csv.")
        if self.rejected_and_removed:
            notes.append(
                f"{self.rejected_and_removed} user(s) this plan rejects were imported (or met in the pool) by an "
                "earlier run and have been deleted from the pool since: they count as rejected, and "
                "legacy-id-to-sub.csv leaves them out.")
        if self.accepted_missing:
            notes.append(
                f"{self.accepted_missing} imported (or skipped) user(s) are not in the pool, and --accept-missing "
                "accepted them as deleted there on purpose: they stay as they were in outcomes.csv and "
                "legacy-id-to-sub.csv (with the sub recorded at the import, where the load looked one up), are not "
                "imported again, and are not checked again.")
        return notes

    @property
    def problems(self) -> list[str]:
        """Why the accounting does not add up, one sentence each with what to do (empty when it does)."""
        found = []
        if self.missing:
            found.append(f"{self.missing} source user(s) have no outcome yet: the load has not reached them "
                         "(a stopped run); rerun the same command.")
        if self.double_in_pool:
            found.append(
                f"{self.double_in_pool} user(s) this plan rejects were imported (or met in the pool) by an "
                "earlier run: the data or the mapping changed since. They are in the pool; outcomes.csv says "
                "so in their detail. Delete them from the pool (AdminDeleteUser) if they must not be there "
                "(the next run then counts them as rejected), or change the data or the mapping back.")
        if self.unconfirmed:
            found.append(f"{self.unconfirmed} imported (or skipped) user(s) do not match the pool: "
                         + "; ".join(f"{n} {label}" for label, n in self.unconfirmed_by_problem)
                         + ". outcomes.csv marks them with confirmed 0: look them up in the pool "
                         "(AdminGetUser) and compare with their import line; the next run checks them again."
                         + (" If those not in the pool were deleted there on purpose, rerun with --accept-missing "
                            "(make migrate ARGS=--accept-missing)."
                            if dict(self.unconfirmed_by_problem).get(NOT_IN_POOL) else ""))
        if self.source_rows != self.accounted and not (self.missing or self.double_counted):
            found.append(f"the outcomes count {self.accounted} users for {self.source_rows} source rows.")
        return found

    @property
    def fails_beyond_the_load(self) -> bool:
        """Whether the accounting fails for more than the users a stopped load has not reached yet (a user
        in two outcomes, an imported user the pool does not match): a stop of the load does not explain it."""
        return bool(self.double_counted or self.unconfirmed or self.accounted > self.source_rows)

    @property
    def ok(self) -> bool:
        return (
            self.source_rows == self.accounted
            and self.missing == 0
            and self.double_counted == 0
            and self.unconfirmed == 0
        )


def reconcile(
    ledger: Ledger,
    tenant: str,
    source_rows: int,
    rejected_ids: Iterable[str] | pd.Series,
    *,
    pool_id: str | None = None,
    target: Any = None,
    expected_status: tuple[str, ...] = ("RESET_REQUIRED",),
    pages_per_second: float = 4.0,
    listings: int = 4,
    outcomes: pd.DataFrame | None = None,
    source_keys: np.ndarray | None = None,
    settled: pd.Index | None = None,
    recheck_settled: bool = False,
    accept_missing: bool = False,
) -> Accounting:
    """Add up the tenant's outcomes; with ``target`` (a CognitoTarget), confirm imported users in the pool.

    The load stage confirmed a sample of each chunk's users right after its job. Every user in the pool
    (imported or skipped) is looked up here, but for the ``settled`` ones, so that a pool changed during
    the run (a user deleted or edited) is caught. Many users cost one ListUsers page per 60 users at
    ``pages_per_second`` (0 = no limit, the local service), the pool listed as ``listings`` concurrent
    shards that share that rate; a few (under one in 60 of the pool) cost an AdminGetUser each.

    ``outcomes``: the tenant's outcomes as ``Ledger.outcomes`` reads them, when the caller has them; what
    the check confirms (``confirmed``, ``sub``) is then stored in the ledger and in this frame alike, so
    that the output files need no second read (~1 s per 150,000 users).

    ``source_keys``: the plan's sorted ``key_hashes`` of every source legacy id. Users with an outcome
    that the source no longer returns are then counted apart (``not_in_source``), not in the accounting.

    ``settled``: the legacy ids an earlier run confirmed in the pool (``Ledger.in_pool_ids`` with
    ``confirmed_only``, read before this run loaded). Their confirmation stands and they are not looked
    up again: a rerun of a migrated tenant (a delta run before cut-over) would otherwise list the whole
    pool, ~15 minutes per million users at AWS's default 20 pages a second. With ``recheck_settled``
    they are looked up too. After an import the pool lives on: users reset their password (their status leaves
    RESET_REQUIRED), edit their profile, or are deleted; such a change to a settled user is counted
    apart (``changed_since``, ``gone_since``: a note), not as an unconfirmed import. Users imported by
    this run, or never confirmed, are held to their import file, but for one change: status CONFIRMED
    (under the recorded sub, when the load recorded one). An import creates RESET_REQUIRED users (fact
    20), so such a user has reset the password since, and may have edited the profile: on a long run
    with the application live, or when the final check of a stopped run comes after go-live. That
    counts as confirmed (``signed_in_since``, a note), with the attributes not compared.

    ``accept_missing``: imported users the check does not find in the pool (users this run imported,
    or never confirmed) were deleted there on purpose, the user says: they are settled as they are
    (``accepted_missing``, a note), instead of failing the accounting on every run.
    """
    outcomes = ledger.outcomes(tenant, pool_id) if outcomes is None else outcomes
    every = outcomes
    gone = np.zeros(len(outcomes), dtype=bool)
    if source_keys is not None and len(outcomes):
        gone = ~np.isin(key_hashes(outcomes["legacy_id"].astype(str)), source_keys)
        outcomes = outcomes[~gone]
    gone_in_pool = int((gone & every["outcome"].isin(IN_POOL)
                        .to_numpy()).sum())
    ids = rejected_ids if isinstance(rejected_ids, pd.Series) else pd.Series(list(rejected_ids), dtype="string")
    rejected = pd.Index(ids.astype("string").unique())
    loaded_ids = pd.Index(outcomes["legacy_id"].astype(str))
    both = rejected.get_indexer(loaded_ids) != -1   # (Index.isin on Arrow strings: ~1.4 s at 350k)
    # this plan rejects users an earlier run loaded: one that Cognito failed never reached the pool, and one
    # deleted from the pool since is no longer there; both count as rejected. Those in the pool still fail it.
    was_failed = both & outcomes["outcome"].eq(Outcome.FAILED.value).to_numpy()
    was_in_pool = both & outcomes["outcome"].isin(IN_POOL).to_numpy()
    removed = np.zeros(len(outcomes), dtype=bool)
    if target is not None and was_in_pool.any():
        removed = _removed_from_pool(ledger, tenant, target, outcomes, was_in_pool, pages_per_second, listings,
                                     into=every)
    resolved = was_failed | removed
    double = int((both & ~resolved).sum())
    double_in_pool = int((was_in_pool & ~removed).sum())
    outcomes = outcomes[~resolved]
    counts = outcomes["outcome"].value_counts()
    imported = int(counts.get(Outcome.IMPORTED.value, 0))
    skipped = int(counts.get(Outcome.SKIPPED.value, 0))
    failed = int(counts.get(Outcome.FAILED.value, 0))
    accounted = imported + skipped + failed + len(rejected) - double
    failed_msgs = (
        outcomes.loc[outcomes["outcome"].eq(Outcome.FAILED.value), "message"].fillna("").value_counts()
    )
    checked = unconfirmed = 0
    problems: dict[str, int] = {}
    since: dict[str, int] = {}
    if target is not None and (imported or skipped):
        settled = settled if settled is not None and len(settled) else None
        if settled is not None and not recheck_settled:
            outcomes = outcomes[settled.get_indexer(outcomes["legacy_id"].astype(str)) == -1]
        # users this plan rejects are accounted above, not held to their import file
        outcomes = outcomes[rejected.get_indexer(outcomes["legacy_id"].astype(str)) == -1]
        checked, unconfirmed, problems, since = _confirm(
            ledger, target, tenant, outcomes, expected_status, pages_per_second, listings, into=every,
            settled=settled, accept_missing=accept_missing,
        )
    return Accounting(
        tenant=tenant,
        source_rows=int(source_rows),
        imported=imported,
        skipped=skipped,
        rejected=len(rejected),
        failed=failed,
        missing=max(0, int(source_rows) - accounted),
        double_counted=double,
        double_in_pool=double_in_pool,
        not_in_source=int(gone.sum()),
        not_in_source_in_pool=gone_in_pool,
        failed_by_message=tuple((str(m), int(n)) for m, n in failed_msgs.items()),
        checked=checked,
        unconfirmed=unconfirmed,
        unconfirmed_by_problem=tuple(sorted(problems.items())),
        rejected_after_failing=int(was_failed.sum()),
        rejected_and_removed=int(removed.sum()),
        **since,
    )


def _removed_from_pool(ledger: Ledger, tenant: str, target: Any, outcomes: pd.DataFrame, was_in_pool: np.ndarray,
                       pages_per_second: float, listings: int, into: pd.DataFrame) -> np.ndarray:
    """Which of the ``was_in_pool`` users (rows of ``outcomes``: imported or skipped by an earlier run,
    rejected by this plan) the pool no longer holds (no account under the name, or one with another sub
    than the recorded one), as a mask over ``outcomes``.

    Each is looked up, whether an earlier run confirmed it or not: with AdminGetUser when they are at most
    ``RECHECK_MISSING`` or a small part of the pool, else by listing the pool. In ``into`` (the frame the
    output files are written from) those gone become rejected users with no sub: ``write_outcomes`` says
    so in their detail, ``write_sub_mapping`` leaves them out. In the ledger they become failed
    (``REMOVED_AFTER_REJECTION``), no longer in the pool: the next run counts them as rejected without a
    lookup, and a plan that takes them again imports them, by their new chunk or ``--retry-failed``.
    """
    removed = np.zeros(len(outcomes), dtype=bool)
    candidates = outcomes[was_in_pool]
    for pool_id, group in candidates.groupby("pool_id"):
        pool = target.describe_user_pool(pool_id)
        key_attribute = key_attribute_of(pool)
        wanted = set(group["username"].astype(str))
        if len(wanted) <= RECHECK_MISSING or len(wanted) * 60 < int(pool.get("EstimatedNumberOfUsers", 0) or 0):
            frame = _looked_up(target, str(pool_id), wanted, [], key_attribute)
        else:
            frame = _listed(target, str(pool_id), wanted, [], key_attribute, pages_per_second, listings,
                            case_insensitive(pool))
        found = frame.reindex(group["username"].astype(str))
        # an account under the name but with another sub is not the user's: in a case-insensitive pool,
        # say, another legacy user imported under a case variant of its name once it was deleted
        recorded = group["sub"].fillna("").astype(str).to_numpy()
        theirs = found["sub"].fillna("").astype(str).to_numpy()
        gone = (theirs == "") | ((recorded != "") & (theirs != recorded))
        removed[outcomes.index.get_indexer(group.index[gone])] = True
    gone_rows = outcomes.index[removed]
    for pool_id, gone in outcomes[removed].groupby("pool_id"):
        ledger.record_outcomes(tenant, str(pool_id), gone.assign(
            outcome=Outcome.FAILED.value, message=REMOVED_AFTER_REJECTION, confirmed=0))
    into.loc[gone_rows, "outcome"] = Outcome.REJECTED.value
    into.loc[gone_rows, "sub"] = None
    into.loc[gone_rows, "confirmed"] = 0
    return removed


def _confirm(
    ledger: Ledger,
    target: Any,
    tenant: str,
    outcomes: pd.DataFrame,
    expected_status: tuple[str, ...],
    pages_per_second: float,
    listings: int,
    into: pd.DataFrame | None = None,
    settled: pd.Index | None = None,
    accept_missing: bool = False,
) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """Look up every imported user in its pool; return (checked, unconfirmed users, problem -> users,
    the counts of the pool's changes that are notes, by ``Accounting`` field: ``changed_since`` and
    ``gone_since`` among the ``settled`` users, which are never unconfirmed again; ``signed_in_since``
    and ``accepted_missing`` among the others).

    Skipped users (already in the pool) are looked up too, for their ``sub``: the application team
    needs the existing account's sub for them as much as for the imported ones.
    """
    problems: dict[str, int] = {}
    since = {"changed_since": 0, "gone_since": 0, "signed_in_since": 0, "accepted_missing": 0}
    checked = unconfirmed = 0
    looked_up = outcomes[outcomes["outcome"].isin(IN_POOL)]
    # a pool's header only grows (custom attributes can be added, never removed), so its widest one is the
    # current one, and holds every attribute of the older ones: the last chunk by name may be an old file's
    headers: dict[str, list[str]] = {}
    for c in ledger.chunks(tenant):
        if c.get("header"):
            header = json.loads(c["header"])
            if len(header) > len(headers.get(c["pool_id"], [])):
                headers[c["pool_id"]] = header
    for pool_id, group in looked_up.groupby("pool_id"):
        header = headers.get(pool_id) or []
        attrs = compared_attributes(header)
        pool = target.describe_user_pool(pool_id)
        key_attribute = key_attribute_of(pool)
        wanted = set(group["username"].astype(str))
        if len(wanted) * 60 < int(pool.get("EstimatedNumberOfUsers", 0) or 0):
            frame = _looked_up(target, str(pool_id), wanted, attrs, key_attribute)
        else:
            frame = _listed(target, str(pool_id), wanted, attrs, key_attribute, pages_per_second, listings,
                            case_insensitive(pool))
        frame = frame[~frame.index.duplicated()]
        is_imported = group["outcome"].eq(Outcome.IMPORTED.value).to_numpy()
        in_settled = (settled.get_indexer(group["legacy_id"].astype(str)) != -1 if settled is not None
                      else np.zeros(len(group), dtype=bool))
        skipped = group[~is_imported]
        if len(skipped):
            found_skipped = frame.reindex(skipped["username"].astype(str))
            # another account under the name (the one recorded deleted, and a new one made) is not the user's:
            # as for an imported user, its sub is not stored, and the recorded one stays
            same = (skipped["sub"].isna() | skipped["sub"].eq(found_skipped["sub"].to_numpy())).to_numpy()
            # an account an earlier run met and confirmed, deleted since or under another sub: the pool's own
            # life, noted as for an imported user (its attributes were never ours to compare); one not settled
            # yet is held to the account the harvest met, as an imported user to its import
            there = found_skipped["sub"].notna().to_numpy()
            bad_any, held, accepted = _tally(
                [(NOT_IN_POOL, ~there), (SUB_DIFFERS, there & ~same)], there, in_settled[~is_imported],
                accept_missing, problems, since)
            unconfirmed += int((bad_any & held).sum())
            settle = skipped[["legacy_id"]].copy()
            settle["confirmed"] = (~bad_any | in_settled[~is_imported] | accepted).astype(int)
            settle["sub"] = found_skipped["sub"].where(same, None).to_numpy()
            _store(ledger, tenant, str(pool_id), settle, into)
        group, was_settled = group[is_imported], in_settled[is_imported]
        if not len(group):
            continue
        names = group["username"].astype(str)
        exists = frame.index.get_indexer(names) != -1   # (Series.isin on Arrow strings: 8 s at 350k)
        found = frame.reindex(names)
        status_ok = found["status"].isin(list(expected_status)).to_numpy()
        sub_ok = (group["sub"].isna() | group["sub"].eq(found["sub"].to_numpy())).to_numpy()
        digest = (
            attrs_digest(canonical_attributes(found[attrs].reset_index(drop=True).fillna(""), attrs))
            if attrs
            else pd.Series([None] * len(group))
        )
        attrs_ok = group["attrs_digest"].isna().to_numpy() | (
            group["attrs_digest"].to_numpy() == digest.to_numpy()
        )
        # the user reset the password since the import (which creates RESET_REQUIRED users, fact 20): the
        # account is the one imported when its sub is, and its attributes are the user's own by now
        signed_in = ~was_settled & exists & sub_ok & ~status_ok & found["status"].isin(["CONFIRMED"]).to_numpy()
        bad_any, held, accepted = _tally([
            (NOT_IN_POOL, ~exists),
            ("status is not " + "/".join(expected_status), exists & ~status_ok),
            (SUB_DIFFERS, exists & ~sub_ok),
            ("attributes differ from the import file", exists & ~attrs_ok),
        ], exists, was_settled, accept_missing, problems, since, spared=signed_in)
        since["signed_in_since"] += int(signed_in.sum())
        checked += len(group)
        unconfirmed += int((bad_any & held).sum())
        confirm = group[["legacy_id"]].copy()
        confirm["confirmed"] = (~bad_any | was_settled | signed_in | accepted).astype(int)
        # only a sub that matches the recorded one (or the first one seen) is stored: a user absent now, or
        # under another sub (an account deleted and created anew), keeps the sub recorded (None: not stored)
        confirm["sub"] = found["sub"].where(exists & sub_ok, None).to_numpy()
        _store(ledger, tenant, str(pool_id), confirm, into)
    return checked, unconfirmed, problems, since


def _tally(checks: list[tuple[str, np.ndarray]], exists: np.ndarray, was_settled: np.ndarray, accept_missing: bool,
           problems: dict[str, int], since: dict[str, int], spared: np.ndarray | None = None,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count one group of looked-up users: ``checks`` is (problem, users it marks), the first the users not
    in the pool (``~exists``). A settled user (``was_settled``) the pool changed or lost since is a note
    (``since``); a user not settled yet is held to the checks (``problems``), unless ``spared`` (a
    password reset) or, missing and with ``accept_missing``, accepted. Returns the users any check marks,
    the users held and the users accepted."""
    bad_any = np.logical_or.reduce([bad for _, bad in checks])
    fresh = ~was_settled
    accepted = fresh & ~exists if accept_missing else np.zeros(len(exists), dtype=bool)
    held = fresh & ~accepted if spared is None else fresh & ~accepted & ~spared
    for label, bad in checks:
        if (bad & held).any():
            problems[label] = problems.get(label, 0) + int((bad & held).sum())
    since["gone_since"] += int((was_settled & ~exists).sum())
    since["changed_since"] += int((was_settled & exists & bad_any).sum())
    since["accepted_missing"] += int(accepted.sum())
    return bad_any, held, accepted


def _store(ledger: Ledger, tenant: str, pool_id: str, confirm: pd.DataFrame, into: pd.DataFrame | None) -> None:
    """``confirmed`` and ``sub`` per user (``confirm``: rows of ``into``, by index) into the ledger and,
    the way ``Ledger.confirm_outcomes`` writes them (a sub not found keeps the stored one), into ``into``."""
    ledger.confirm_outcomes(tenant, pool_id, confirm)
    if into is None:
        return
    found = confirm["sub"].notna()
    into.loc[confirm.index, "confirmed"] = confirm["confirmed"].to_numpy()
    into.loc[confirm.index[found.to_numpy()], "sub"] = confirm.loc[found, "sub"].to_numpy()


def _looked_up(target: Any, pool_id: str, names: Iterable[str], attrs: list[str],
               key_attribute: str | None) -> pd.DataFrame:
    """The named users, one AdminGetUser each, a few at once (absent ones are left out), as ``users_frame``."""
    users = get_users(lambda name: target.admin_get_user(pool_id, name), list(names))
    return users_frame(users, attrs, key_attribute)


def _listed(target: Any, pool_id: str, wanted: set[str], attrs: list[str], key_attribute: str | None,
            pages_per_second: float, listings: int, fold_case: bool = False) -> pd.DataFrame:
    """The ``wanted`` users found by listing the whole pool, as ``users_frame``.

    The pool is listed as shards by ``sub`` prefix, ``listings`` at once; each user is in exactly one.
    A wanted user no listing returned is looked up once more with AdminGetUser (when there are at most
    ``RECHECK_MISSING``), so that "not in the pool" never rests on a listing alone.
    """
    batches: list[pd.DataFrame] = []
    users: list[dict[str, Any]] = []
    keep = wanted_users(wanted, key_attribute, fold_case)
    for page in target.list_user_pages(pool_id, listings=listings, pages_per_second=pages_per_second):
        users.extend(keep(page))
        if len(users) >= 10_000:   # compact as we go: a raw ListUsers user is ~4 KB of dicts
            batches.append(users_frame(users, attrs, key_attribute))
            users = []
    batches.append(users_frame(users, attrs, key_attribute))
    frame = pd.concat(batches) if len(batches) > 1 else batches[0]
    missing = wanted.difference(frame.index)
    if 0 < len(missing) <= RECHECK_MISSING:
        frame = pd.concat([frame, _looked_up(target, pool_id, sorted(missing), attrs, key_attribute)])
    return frame


def write_outcomes(ledger: Ledger, tenant: str, rejects_path: Path, path: Path,
                   pool_id: str | None = None, outcomes: pd.DataFrame | None = None) -> int:
    """Write one line per source user (mode 0600): ``legacy_id,outcome,detail,job_id,line,confirmed``.

    ``detail`` is the rejection reason codes (joined with ``;``) for rejected users and Cognito's
    message for skipped and failed ones. ``confirmed`` is 1 or 0 for users in the pool (imported or
    skipped): whether the check against the pool found them as their import file says; empty otherwise.
    Users the load has not reached yet (a stopped run) are absent here and counted as ``missing`` by
    ``reconcile``. ``outcomes``: the ledger's outcomes already read (``Ledger.outcomes``), so that one
    read serves both output files (~1.4 s each at 350k users).
    """
    loaded = _read(ledger, tenant, pool_id, outcomes)[
        ["legacy_id", "outcome", "message", "job_id", "line", "confirmed"]]
    loaded = loaded.rename(columns={"message": "detail"})
    # SQLite hands a column with NULLs to pandas as floats: the line numbers would read "12.0"
    loaded["line"] = pd.to_numeric(loaded["line"], errors="coerce").astype("Int64")
    loaded["confirmed"] = (pd.to_numeric(loaded["confirmed"], errors="coerce").fillna(0).astype("Int64")
                           .where(loaded["outcome"].isin(IN_POOL), pd.NA))
    rejects = pd.read_csv(rejects_path, dtype=str, keep_default_na=False, na_filter=False)
    rejected = _reasons_per_id(rejects[["legacy_id", "reason"]])
    rejected.insert(1, "outcome", Outcome.REJECTED.value)
    earlier = pd.Index(loaded["legacy_id"]).get_indexer(rejected["legacy_id"])   # loaded before, now rejected
    if (earlier != -1).any():
        hit = earlier != -1
        jobs = loaded["job_id"].fillna("").astype(str).to_numpy()[earlier[hit]]
        was = loaded["outcome"].astype(str).to_numpy()[earlier[hit]]
        rejected.loc[hit, "detail"] = [f"{d}; {_earlier(v, j)}"
                                       for d, v, j in zip(rejected.loc[hit, "detail"], was, jobs, strict=True)]
    not_rejected = pd.Index(rejected["legacy_id"]).get_indexer(loaded["legacy_id"]) == -1
    frame = pd.concat([rejected, loaded[not_rejected]], ignore_index=True)
    _write_private_csv(frame, path)
    return len(frame)


def _earlier(outcome: str, job_id: str) -> str:
    """What an earlier run did with a user this plan rejects (``outcome`` as ``reconcile`` left it: a user
    it found deleted from the pool since is ``rejected`` there)."""
    by = f"job {job_id} of " if job_id else ""
    if outcome == Outcome.FAILED.value:
        return f"not in the pool after {by}an earlier run"
    if outcome == Outcome.REJECTED.value:
        return f"in the pool after {by}an earlier run, deleted from it since"
    return f"{outcome} by {by}an earlier run: in the pool"


def _reasons_per_id(rejects: pd.DataFrame) -> pd.DataFrame:
    """``legacy_id, detail``: each id once (first-seen order), its distinct reasons joined with ``;``.

    Only ids with several reasons are joined group by group; a per-group lambda over every rejected
    id took ~10 s at 150,000 of them.
    """
    pairs = rejects.drop_duplicates()
    several = pairs["legacy_id"].duplicated(keep=False).to_numpy()
    joined = pairs[several].groupby("legacy_id", sort=False)["reason"].agg(";".join)
    first = pairs.drop_duplicates("legacy_id").reset_index(drop=True)
    alone = joined.index.get_indexer(first["legacy_id"]) == -1
    detail = first["reason"].where(alone, first["legacy_id"].map(joined))
    return pd.DataFrame({"legacy_id": first["legacy_id"], "detail": detail})


def _write_private_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            write_frame(handle, frame)
        os.replace(tmp, path)
    except BaseException:   # a full disk: the half-written copy (PII) is not left beside the file
        tmp.unlink(missing_ok=True)
        raise


def write_sub_mapping(ledger: Ledger, tenant: str, path: Path, pool_id: str | None = None,
                      outcomes: pd.DataFrame | None = None) -> int:
    """Write ``legacy_id,username,sub`` (mode 0600) for imported and skipped users; return the row count.

    ``outcomes``: the ledger's outcomes as ``reconcile`` left them (the frame handed to it, which it
    confirms into), so that the file needs no read of its own.
    """
    outcomes = _read(ledger, tenant, pool_id, outcomes)
    keep = outcomes["outcome"].isin(IN_POOL) & outcomes["sub"].notna()
    frame = outcomes.loc[keep, ["legacy_id", "username", "sub"]]
    _write_private_csv(frame, path)
    return len(frame)


def _read(ledger: Ledger, tenant: str, pool_id: str | None, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    return ledger.outcomes(tenant, pool_id) if outcomes is None else outcomes
