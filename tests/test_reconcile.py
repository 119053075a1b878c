"""Reconciliation: the accounting adds up, imported users are confirmed in the pool, the sub mapping."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.arrowtext import key_hashes
from pipeline.chunk import write_chunks
from pipeline.cognito import CognitoTarget
from pipeline.ledger import Ledger
from pipeline.load import run_load
from pipeline.reconcile import NOT_IN_POOL, REMOVED_AFTER_REJECTION, reconcile, write_sub_mapping
from tests import loadfixtures as fx
from tests.loadfixtures import fast_policy, full_frame, make_chunks, make_target, new_pool

service, ledger = fx.service, fx.ledger  # fixtures (no conftest.py: see loadfixtures)


def _outcomes(led: Ledger, rows: list[tuple[str, str, str]]) -> None:
    led.record_outcomes("acme", "pool_1", pd.DataFrame(rows, columns=["legacy_id", "outcome", "message"]))



def _imported_and_checked(service: Any, ledger: Ledger, directory: Path, users: int,
                          chunk_rows: int) -> tuple[CognitoTarget, str, list[str], pd.Index]:
    """A new pool with ``users`` imported in chunks of ``chunk_rows`` and confirmed by a first check:
    (target, pool id, its CSV header, the ids that check settled)."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    run_load(target, ledger, "acme", pool_id, make_chunks(directory, header, users, chunk_rows=chunk_rows),
             fast_policy())
    assert reconcile(ledger, "acme", users, set(), target=target).ok
    return target, pool_id, header, ledger.in_pool_ids("acme", pool_id, confirmed_only=True)

def test_accounting_adds_up(ledger: Ledger) -> None:
    _outcomes(
        ledger,
        [
            ("1", "imported", "ok"),
            ("2", "skipped", "The user already exists."),
            ("3", "failed", "bad phone"),
            ("4", "failed", "bad phone"),
            ("5", "failed", "other"),
        ],
    )
    acc = reconcile(ledger, "acme", 7, {"6", "7"})
    assert (acc.imported, acc.skipped, acc.failed, acc.rejected, acc.source_rows) == (1, 1, 3, 2, 7)
    assert acc.ok and acc.missing == 0 and acc.double_counted == 0
    assert dict(acc.failed_by_message) == {"bad phone": 2, "other": 1}
    assert reconcile(ledger, "other-tenant", 0, set()).ok


def test_missing_and_double_counted_users_fail_the_accounting(ledger: Ledger) -> None:
    _outcomes(ledger, [("1", "imported", "ok"), ("2", "failed", "bad")])
    short = reconcile(ledger, "acme", 4, pd.Series(["3"]))
    assert not short.ok and short.missing == 1 and short.accounted == 3
    assert short.problems == ["1 source user(s) have no outcome yet: the load has not reached them (a stopped "
                              "run); rerun the same command."]
    # a user Cognito failed never reached the pool: now rejected, it counts as rejected, with a note
    failed_then_rejected = reconcile(ledger, "acme", 3, {"2", "3"})
    assert failed_then_rejected.ok and failed_then_rejected.problems == []
    assert (failed_then_rejected.imported, failed_then_rejected.failed, failed_then_rejected.rejected) == (1, 0, 2)
    assert (failed_then_rejected.double_counted, failed_then_rejected.rejected_after_failing) == (0, 1)
    assert failed_then_rejected.notes == [
        "1 user(s) this plan rejects are not in the pool, though an earlier run loaded them (Cognito failed them "
        "in its job, or they were deleted from the pool once rejected): they count as rejected, with this plan's "
        "reasons in outcomes.csv."]
    in_pool = reconcile(ledger, "acme", 3, {"1", "3"})      # no target to look it up in: it is in the pool
    assert not in_pool.ok and (in_pool.double_counted, in_pool.double_in_pool) == (1, 1)
    (problem,) = in_pool.problems
    assert problem.startswith("1 user(s) this plan rejects were imported (or met in the pool) by an earlier run")
    assert "the next run then counts them as rejected" in problem
    assert reconcile(ledger, "acme", 3, {"3"}).problems == []


def test_rejected_users_an_earlier_run_imported_count_as_rejected_once_deleted_from_the_pool(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """The data or the mapping changed: this plan rejects users in the pool, and the accounting fails
    until they are deleted there (as its problem says); then they count as rejected, each looked up again
    even when an earlier run confirmed it, and the output files say so."""
    from pipeline.reconcile import write_outcomes

    target, pool_id, header, settled = _imported_and_checked(service, ledger, tmp_path / "c", 6, 6)
    now_rejected = {"L1", "L2"}

    still = reconcile(ledger, "acme", 6, now_rejected, target=target, settled=settled)
    assert not still.ok and (still.double_in_pool, still.rejected_and_removed) == (2, 0)
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user1")      # as the problem says
    outcomes = ledger.outcomes("acme", pool_id)
    half = reconcile(ledger, "acme", 6, now_rejected, target=target, settled=settled, outcomes=outcomes)
    assert not half.ok and (half.double_in_pool, half.rejected_and_removed) == (1, 1)
    assert (half.imported, half.rejected) == (5, 2) and half.accounted == 7         # L2 in both, still
    assert any(n.startswith("1 user(s) this plan rejects were imported (or met in the pool) by an earlier run "
                            "and have been deleted from the pool since") for n in half.notes)
    pd.DataFrame({"legacy_id": ["L1", "L2"], "reason": ["invalid_phone", "invalid_phone"]}).to_csv(
        tmp_path / "rejects.csv", index=False)
    write_outcomes(ledger, "acme", tmp_path / "rejects.csv", tmp_path / "outcomes.csv", outcomes=outcomes)
    detail = pd.read_csv(tmp_path / "outcomes.csv", dtype=str).set_index("legacy_id")["detail"]
    job = ledger.outcomes("acme", pool_id).set_index("legacy_id").loc["L1", "job_id"]
    assert detail["L1"] == f"invalid_phone; in the pool after job {job} of an earlier run, deleted from it since"
    assert detail["L2"] == f"invalid_phone; imported by job {job} of an earlier run: in the pool"
    assert write_sub_mapping(ledger, "acme", tmp_path / "subs.csv", outcomes=outcomes) == 5
    assert "L1" not in set(pd.read_csv(tmp_path / "subs.csv", dtype=str)["legacy_id"])

    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user2")     # and somebody else takes the name:
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user2", MessageAction="SUPPRESS")   # another sub
    calls = target.calls.get("AdminGetUser", 0)
    done = reconcile(ledger, "acme", 6, now_rejected, target=target, settled=settled)
    assert done.ok and (done.imported, done.rejected) == (4, 2)
    assert (done.rejected_and_removed, done.rejected_after_failing) == (1, 1)   # L1: known gone, not looked up
    assert target.calls.get("AdminGetUser", 0) - calls == 1
    assert done.problems == [] and done.checked == 0      # the others are settled; none is held to its file

    # the ledger no longer has them in the pool: a plan that takes them again imports them
    assert not now_rejected & set(ledger.in_pool_ids("acme", pool_id))
    back = reconcile(ledger, "acme", 6, set(), target=target, settled=settled)
    assert back.ok and (back.imported, back.failed, back.rejected) == (4, 2, 0)
    assert dict(back.failed_by_message) == {REMOVED_AFTER_REJECTION: 2}


def test_users_no_longer_in_the_source_are_counted_apart(ledger: Ledger) -> None:
    _outcomes(ledger, [("1", "imported", "ok"), ("2", "failed", "bad"), ("3", "imported", "ok"),
                       ("5", "failed", "bad")])
    source = np.sort(key_hashes(pd.Series(["1", "2", "4"])))       # 3 and 5 were deleted from the source
    acc = reconcile(ledger, "acme", 3, {"4"}, source_keys=source)
    assert acc.ok and (acc.imported, acc.failed, acc.rejected) == (1, 1, 1)
    assert (acc.not_in_source, acc.not_in_source_in_pool) == (2, 1)
    assert acc.notes[0].startswith("2 user(s) with an outcome from an earlier run are no longer in the source")
    without = reconcile(ledger, "acme", 3, {"4"})                   # no source keys: they count, and fail it
    assert not without.ok and without.notes == []
    assert reconcile(ledger, "acme", 0, set(), source_keys=np.zeros(0, dtype=np.uint64)).not_in_source == 4


def test_confirmed_against_the_pool_and_sub_mapping(service: Any, ledger: Ledger, tmp_path: Path) -> None:
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 8, chunk_rows=4)
    run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    acc = reconcile(ledger, "acme", 9, {"L99"}, target=target)
    assert acc.ok and (acc.imported, acc.rejected, acc.checked, acc.unconfirmed) == (8, 1, 8, 0)

    path = tmp_path / "out" / "legacy-id-to-sub.csv"
    assert write_sub_mapping(ledger, "acme", path) == 8
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    mapping = pd.read_csv(path, dtype=str)
    assert list(mapping.columns) == ["legacy_id", "username", "sub"]
    subs = {
        u["Username"]: {a["Name"]: a["Value"] for a in u["Attributes"]}["sub"]
        for u in target.list_users(pool_id)
    }
    assert dict(zip(mapping["username"], mapping["sub"], strict=True)) == subs

    # the pool drifts: one user changed, one deleted -> the accounting no longer holds
    target._idp.admin_update_user_attributes(
        UserPoolId=pool_id, Username="user2", UserAttributes=[{"Name": "name", "Value": "Someone Else"}]
    )
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user5")
    drift = reconcile(ledger, "acme", 9, {"L99"}, target=target)
    assert not drift.ok and drift.unconfirmed == 2
    assert dict(drift.unconfirmed_by_problem) == {
        "attributes differ from the import file": 1,
        "not in the pool": 1,
    }
    (problem,) = drift.problems
    assert problem.startswith("2 imported (or skipped) user(s) do not match the pool: 1 attributes differ from the "
                              "import file; 1 not in the pool. outcomes.csv marks them with confirmed 0")
    from pipeline.reconcile import write_outcomes

    pd.DataFrame(columns=["legacy_id", "reason"]).to_csv(tmp_path / "rejects.csv", index=False)
    write_outcomes(ledger, "acme", tmp_path / "rejects.csv", tmp_path / "outcomes.csv")
    out = pd.read_csv(tmp_path / "outcomes.csv", dtype=str)
    assert sorted(out.loc[out["confirmed"].eq("0"), "legacy_id"]) == ["L2", "L5"]


def test_users_an_earlier_run_confirmed_are_not_looked_up_again_and_their_later_changes_are_notes(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """After go-live users reset their password and edit their profile, and some are deleted. A later run
    does not look up the users an earlier run confirmed (a delta run would list the whole pool); asked
    to, it notes their changes, and it still fails on users it holds to their import file."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "c", header, 8, chunk_rows=4), fast_policy())
    assert reconcile(ledger, "acme", 8, set(), target=target).ok
    subs = {r.legacy_id: r.sub for r in ledger.outcomes("acme", pool_id).itertuples()}
    settled = ledger.in_pool_ids("acme", pool_id, confirmed_only=True)
    assert sorted(settled) == [f"L{i}" for i in range(8)]

    target._idp.admin_set_user_password(UserPoolId=pool_id, Username="user1", Password="Aa1!aaaaaaaa",
                                        Permanent=True)
    target._idp.admin_update_user_attributes(
        UserPoolId=pool_id, Username="user2", UserAttributes=[{"Name": "name", "Value": "Someone Else"}])
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user3")
    calls = dict(target.calls)
    quiet = reconcile(ledger, "acme", 8, set(), target=target, settled=settled)
    assert quiet.ok and (quiet.checked, quiet.notes) == (0, [])
    assert [target.calls.get(op, 0) - calls.get(op, 0) for op in ("ListUsers", "AdminGetUser")] == [0, 0]

    later = reconcile(ledger, "acme", 8, set(), target=target, settled=settled, recheck_settled=True)
    assert later.ok and (later.checked, later.unconfirmed, later.changed_since, later.gone_since) == (8, 0, 2, 1)
    assert later.problems == [] and len(later.notes) == 2
    known = "imported (or met) and confirmed in the pool by an earlier run"
    assert later.notes[0].startswith(f"2 user(s) {known} have changed")
    assert later.notes[1].startswith(f"1 user(s) {known} are no longer")
    after = ledger.outcomes("acme", pool_id).set_index("legacy_id")
    assert after["confirmed"].eq(1).all() and after.loc["L3", "sub"] == subs["L3"]   # the deleted one keeps its sub
    again = reconcile(ledger, "acme", 8, set(), target=target, settled=settled, recheck_settled=True)
    assert again.notes == later.notes                                             # and so does the next run

    # users this run imported (not settled) are held to their import file: an edit or a deletion fails
    # their confirmation; a password reset (CONFIRMED under the recorded sub) is the user signing in since
    target._idp.admin_update_user_attributes(
        UserPoolId=pool_id, Username="user1", UserAttributes=[{"Name": "name", "Value": "Edited After Sign-in"}])
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user4")        # the same username, anew:
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user4", MessageAction="SUPPRESS")
    target._idp.admin_set_user_password(UserPoolId=pool_id, Username="user4", Password="Aa1!aaaaaaaa",
                                        Permanent=True)                        # CONFIRMED, another sub
    fresh = reconcile(ledger, "acme", 8, set(), target=target, settled=settled.drop(["L1", "L2", "L3", "L4"]))
    assert not fresh.ok and (fresh.checked, fresh.unconfirmed, fresh.signed_in_since) == (4, 3, 1)
    assert (fresh.changed_since, fresh.gone_since) == (0, 0)
    assert dict(fresh.unconfirmed_by_problem) == {
        "attributes differ from the import file": 2,     # L2, and L4's new account
        "not in the pool": 1,                             # L3
        "status is not RESET_REQUIRED": 1,                # L4's new account: not the one imported
        "sub differs from the one recorded": 1,
    }
    assert [n for n in fresh.notes if "reset their password" in n][0].startswith(
        "1 imported user(s) have already reset their password (status CONFIRMED")
    confirmed = ledger.outcomes("acme", pool_id).set_index("legacy_id")["confirmed"]
    assert (confirmed["L1"], confirmed["L2"], confirmed["L3"], confirmed["L4"]) == (1, 0, 0, 0)
    # the new account's sub does not replace the one imported: the next run must still see it differ
    assert ledger.outcomes("acme", pool_id).set_index("legacy_id").loc["L4", "sub"] == subs["L4"]
    (problem,) = fresh.problems                                   # L3 fails every run, unless accepted:
    assert problem.endswith("If those not in the pool were deleted there on purpose, rerun with --accept-missing "
                            "(make migrate ARGS=--accept-missing).")

    accepted = reconcile(ledger, "acme", 8, set(), target=target, settled=settled.drop(["L1", "L2", "L3", "L4"]),
                         accept_missing=True)
    assert not accepted.ok and (accepted.unconfirmed, accepted.accepted_missing, accepted.signed_in_since) == (2, 1, 1)
    assert NOT_IN_POOL not in dict(accepted.unconfirmed_by_problem) and "--accept-missing" not in accepted.problems[0]
    assert any(n.startswith("1 imported (or skipped) user(s) are not in the pool, and --accept-missing accepted")
               for n in accepted.notes)
    after = ledger.outcomes("acme", pool_id).set_index("legacy_id")
    assert (after.loc["L3", "outcome"], after.loc["L3", "confirmed"], after.loc["L3", "sub"]) == (
        "imported", 1, subs["L3"])                                # settled as it was: not checked again
    assert "L3" in ledger.in_pool_ids("acme", pool_id, confirmed_only=True)


def test_users_imported_after_the_pool_gained_a_custom_attribute_are_confirmed(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """A custom attribute added to the pool (AddCustomAttributes; none can be removed) widens the CSV
    header. Users imported with it are held to the new header's attributes, whatever old chunks of the
    pool (here chunk-00003, named after the new plan's last file) the ledger still holds."""
    target, pool_id, header, settled = _imported_and_checked(service, ledger, tmp_path / "old", 6, 2)

    target._idp.add_custom_attributes(UserPoolId=pool_id, CustomAttributes=[
        {"Name": "dept", "AttributeDataType": "String", "Mutable": True}])
    wider = target.get_csv_header(pool_id)
    assert "custom:dept" in wider and "custom:dept" not in header
    frame = full_frame(wider, 2, start=6)
    frame["custom:dept"] = pd.Series(["sales"] * 2, dtype="string[pyarrow]")
    chunks = write_chunks([frame], wider, tmp_path / "new", chunk_rows=10)
    assert run_load(target, ledger, "acme", pool_id, chunks, fast_policy()).imported == 2
    acc = reconcile(ledger, "acme", 8, set(), target=target, settled=settled)
    assert acc.problems == [] and acc.ok and (acc.checked, acc.unconfirmed) == (2, 0)


def test_skipped_users_get_the_existing_accounts_sub(service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """A user who was already in the pool is mapped to that account's sub, even when the harvest's
    sample did not look it up."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    existing = target._idp.admin_create_user(UserPoolId=pool_id, Username="user3", MessageAction="SUPPRESS")
    existing_sub = {a["Name"]: a["Value"] for a in existing["User"]["Attributes"]}["sub"]
    chunks = make_chunks(tmp_path / "c", header, 6, chunk_rows=6)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(verify_sample=1))
    assert (result.imported, result.skipped) == (5, 1)
    acc = reconcile(ledger, "acme", 6, set(), target=target)
    assert acc.ok and acc.skipped == 1
    path = tmp_path / "sub.csv"
    assert write_sub_mapping(ledger, "acme", path) == 6
    rows = pd.read_csv(path, dtype=str).set_index("username")
    assert rows.loc["user3", "sub"] == existing_sub


def test_a_skipped_users_sub_is_not_replaced_by_another_account_under_its_name(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """The account a skipped user was mapped to is deleted and another one made under the username (a new
    sign-up after go-live, say). Looking it up again must not hand the legacy user that stranger's sub,
    as it does not for an imported user: legacy-id-to-sub.csv keeps the sub confirmed at the import."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user3", MessageAction="SUPPRESS")
    run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "c", header, 6, chunk_rows=6), fast_policy())
    assert reconcile(ledger, "acme", 6, set(), target=target).ok
    mine = ledger.outcomes("acme", pool_id).set_index("legacy_id").loc["L3", "sub"]
    settled = ledger.in_pool_ids("acme", pool_id, confirmed_only=True)

    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user3")
    stranger = target._idp.admin_create_user(UserPoolId=pool_id, Username="user3", MessageAction="SUPPRESS")
    theirs = {a["Name"]: a["Value"] for a in stranger["User"]["Attributes"]}["sub"]
    assert theirs != mine
    for kept in (dict(settled=settled, recheck_settled=True), {}):   # an earlier run's user, or this run's
        frame = ledger.outcomes("acme", pool_id)
        reconcile(ledger, "acme", 6, set(), target=target, outcomes=frame, **kept)
        assert frame.set_index("legacy_id").loc["L3", "sub"] == mine
        assert ledger.outcomes("acme", pool_id).set_index("legacy_id").loc["L3", "sub"] == mine


def test_a_skipped_user_deleted_from_the_pool_before_the_final_check_fails_it_until_accepted(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """A user the harvest met in the pool (skipped, mapped to the account's sub) whose account is deleted
    before the final check (a stopped run resumed later, a paced check on AWS): it is not in the pool, as an
    imported user deleted then is not, and fails the accounting until --accept-missing settles it. The check
    found it absent and said nothing: OK, with the deleted account's sub in legacy-id-to-sub.csv."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user3", MessageAction="SUPPRESS")
    run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "c", header, 6, chunk_rows=6), fast_policy())
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user3")

    acc = reconcile(ledger, "acme", 6, set(), target=target)
    assert not acc.ok and acc.skipped == 1 and dict(acc.unconfirmed_by_problem) == {NOT_IN_POOL: 1}
    assert acc.problems[0].startswith("1 imported (or skipped) user(s) do not match the pool: 1 not in the pool.")
    assert ledger.outcomes("acme", pool_id).set_index("legacy_id").loc["L3", "confirmed"] == 0
    assert not reconcile(ledger, "acme", 6, set(), target=target).ok                  # every run, until:
    accepted = reconcile(ledger, "acme", 6, set(), target=target, accept_missing=True)
    assert accepted.ok and accepted.accepted_missing == 1
    settled = ledger.in_pool_ids("acme", pool_id, confirmed_only=True)
    assert reconcile(ledger, "acme", 6, set(), target=target, settled=settled).ok


def test_a_tenant_whose_users_were_all_skipped_is_checked_against_the_pool_too(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """Every user already in the pool (the ledger lost and the mapping changed since, say): none imported, all
    skipped. The final check still looks them up: one deleted before it fails the accounting, and one an earlier
    run confirmed is noted by --recheck-pool once deleted. Without an imported user the check did not run."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    for i in range(3):
        target._idp.admin_create_user(UserPoolId=pool_id, Username=f"user{i}", MessageAction="SUPPRESS")
    run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "c", header, 3, chunk_rows=3), fast_policy())
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user0")
    acc = reconcile(ledger, "acme", 3, set(), target=target)
    assert (acc.imported, acc.skipped) == (0, 3)
    assert not acc.ok and dict(acc.unconfirmed_by_problem) == {NOT_IN_POOL: 1}

    assert reconcile(ledger, "acme", 3, set(), target=target, accept_missing=True).ok
    settled = ledger.in_pool_ids("acme", pool_id, confirmed_only=True)
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user1")
    later = reconcile(ledger, "acme", 3, set(), target=target, settled=settled, recheck_settled=True)
    assert later.ok and later.gone_since == 2        # user1, and user0 accepted as deleted before


def test_recheck_pool_notes_skipped_users_deleted_or_replaced_in_the_pool_since(
        service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """Users an earlier run met in the pool (skipped) and confirmed are settled as imported ones are; with
    recheck_settled, one deleted from the pool since, or under another account now, is noted as an imported
    one is (gone_since, changed_since): the check said nothing of them, and legacy-id-to-sub.csv kept the
    deleted account's sub without a word."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    for name in ("user2", "user3"):
        target._idp.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
    run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "c", header, 6, chunk_rows=6), fast_policy())
    first = reconcile(ledger, "acme", 6, set(), target=target)
    assert first.ok and first.skipped == 2
    settled = ledger.in_pool_ids("acme", pool_id, confirmed_only=True)
    assert {"L2", "L3"} <= set(settled)

    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user2")
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user3")     # and a new sign-up takes the name
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user3", MessageAction="SUPPRESS")
    later = reconcile(ledger, "acme", 6, set(), target=target, settled=settled, recheck_settled=True)
    assert later.ok and (later.gone_since, later.changed_since) == (1, 1)
    assert any(n.startswith("1 user(s) imported (or met) and confirmed in the pool by an earlier run are no "
                            "longer there") for n in later.notes)


def test_outcomes_handed_to_reconcile_end_as_the_ledger_stores_them(service: Any, ledger: Ledger,
                                                                    tmp_path: Path) -> None:
    """The output files are written from the frame the runner hands to reconcile, not from a second read
    of the ledger: the frame must end with every user's confirmed flag and sub exactly as the ledger
    stores them, a sub the pool no longer has keeping the one recorded before."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    existing = target._idp.admin_create_user(UserPoolId=pool_id, Username="user3", MessageAction="SUPPRESS")
    chunks = make_chunks(tmp_path / "c", header, 6, chunk_rows=6)
    run_load(target, ledger, "acme", pool_id, chunks, fast_policy(verify_sample=1))
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user5")
    frame = ledger.outcomes("acme", pool_id)
    before = frame.copy()
    acc = reconcile(ledger, "acme", 6, set(), pool_id=pool_id, target=target, outcomes=frame)
    assert (acc.skipped, acc.unconfirmed) == (1, 1)

    def rows(f: pd.DataFrame) -> list[tuple[str, int, str | None]]:
        return [(str(r.legacy_id), int(r.confirmed), None if pd.isna(r.sub) else str(r.sub))
                for r in f.itertuples()]

    assert rows(frame) == rows(ledger.outcomes("acme", pool_id))
    changed = {r[0] for r in set(rows(frame)) - set(rows(before))}
    assert {"L1", "L2", "L4"} <= changed                    # imported users the harvest's sample left out
    sub = {a["Name"]: a["Value"] for a in existing["User"]["Attributes"]}["sub"]
    assert frame.set_index("legacy_id").loc["L3", "sub"] == sub   # the skipped user: the existing account's
    assert {r[0]: r[1] for r in rows(frame)}["L5"] == 0     # the deleted user stays unconfirmed


def test_sharded_confirmation_catches_drift_among_other_users(service: Any, ledger: Ledger, tmp_path: Path) -> None:
    """The pool also holds users of no outcome; a user replaced by another account and a deletion are still
    each caught once, and a password reset is noted, not caught."""
    service.reset_faults()
    target = make_target(service)
    pool_id, header = new_pool(target)
    for i in range(40):   # someone else's users in the same pool
        target._idp.admin_create_user(UserPoolId=pool_id, Username=f"other{i}", MessageAction="SUPPRESS")
    chunks = make_chunks(tmp_path / "c", header, 130, chunk_rows=130)
    run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    before = target.calls.get("ListUsers", 0)
    acc = reconcile(ledger, "acme", 130, set(), target=target, pages_per_second=200, listings=3)
    assert acc.ok and (acc.checked, acc.unconfirmed) == (130, 0)
    assert target.calls["ListUsers"] - before >= 16          # listed shard by shard
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user7")
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user7", MessageAction="SUPPRESS")
    target._idp.admin_delete_user(UserPoolId=pool_id, Username="user70")
    target._idp.admin_set_user_password(UserPoolId=pool_id, Username="user9", Password="Aa1!aaaaaaaa",
                                        Permanent=True)
    drift = reconcile(ledger, "acme", 130, set(), target=target, listings=2, pages_per_second=0)
    assert (drift.checked, drift.unconfirmed, drift.signed_in_since) == (130, 2, 1)
    assert dict(drift.unconfirmed_by_problem) == {
        "attributes differ from the import file": 1, "not in the pool": 1,
        "status is not RESET_REQUIRED": 1, "sub differs from the one recorded": 1}


def test_outcomes_file_joins_each_ids_distinct_reasons_in_order(ledger: Ledger, tmp_path: Path) -> None:
    from pipeline.reconcile import write_outcomes

    _outcomes(ledger, [("1", "imported", "ok"), ("2", "failed", "bad phone"), ("9", "imported", "ok")])
    ledger.record_outcomes("acme", "pool_1", pd.DataFrame(
        [("3", "imported", "ok", 12), ("4", "failed", "no line", None)],
        columns=["legacy_id", "outcome", "message", "line"]))
    rejects = pd.DataFrame({
        "legacy_id": ["7", "5", "7", "5", "7", "9"],
        "reason": ["bad_email", "missing", "too_long", "missing", "bad_email", "duplicate"],
    })
    for column in ("tenant", "column", "masked_value", "detail"):
        rejects[column] = ""
    rejects.to_csv(tmp_path / "rejects.csv", index=False)
    assert write_outcomes(ledger, "acme", tmp_path / "rejects.csv", tmp_path / "outcomes.csv") == 7
    out = pd.read_csv(tmp_path / "outcomes.csv", dtype=str, keep_default_na=False)
    assert out[["legacy_id", "outcome", "detail"]].values.tolist() == [
        ["7", "rejected", "bad_email;too_long"],
        ["5", "rejected", "missing"],
        # a rejected id is not also listed with its load outcome; an earlier import is named in its detail
        ["9", "rejected", "duplicate; imported by an earlier run: in the pool"],
        ["1", "imported", "ok"],
        ["2", "failed", "bad phone"],
        ["3", "imported", "ok"],
        ["4", "failed", "no line"],
    ]
    assert out.set_index("legacy_id")["line"].to_dict() == {     # line numbers as integers, not "12.0"
        "7": "", "5": "", "9": "", "1": "", "2": "", "3": "12", "4": ""}
    assert list(out.columns) == ["legacy_id", "outcome", "detail", "job_id", "line", "confirmed"]
    ledger.confirm_outcomes("acme", "pool_1", pd.DataFrame({"legacy_id": ["3"], "confirmed": [1], "sub": ["s3"]}))
    write_outcomes(ledger, "acme", tmp_path / "rejects.csv", tmp_path / "outcomes.csv")
    out = pd.read_csv(tmp_path / "outcomes.csv", dtype=str, keep_default_na=False)
    assert out.set_index("legacy_id")["confirmed"].to_dict() == {   # only users in the pool have a verdict
        "7": "", "5": "", "9": "", "1": "0", "2": "", "3": "1", "4": ""}


def test_listed_users_are_matched_by_case_variant_only_in_a_case_insensitive_pool() -> None:
    """A listing finds the pool's users by what the import file calls them; in a pool whose usernames
    are case-insensitive (fact 46) an account under a case variant is the wanted user, keyed by the
    file's name; elsewhere it is somebody else."""
    from pipeline.poolusers import case_insensitive, wanted_users

    page = [{"Username": "jsmith", "Attributes": []}, {"Username": "Other", "Attributes": []},
            {"Username": "AnnaK", "Attributes": []}]
    wanted = {"JSmith", "AnnaK"}
    assert [u.get("_key", u["Username"]) for u in wanted_users(wanted, None, fold_case=True)(page)] == [
        "AnnaK", "JSmith"]                                   # the exact names first, then the variants
    assert [u["_key"] for u in wanted_users(wanted, None, fold_case=True)(iter(page))
            if "_key" in u] == ["JSmith"]                    # a stream (the harvest's listing) alike
    assert [u["Username"] for u in wanted_users(wanted, None)(page)] == ["AnnaK"]
    assert case_insensitive({"UsernameConfiguration": {"CaseSensitive": False}})
    assert not case_insensitive({"UsernameConfiguration": {"CaseSensitive": True}}) and not case_insensitive({})


def test_a_sub_mapping_the_disk_cannot_hold_leaves_no_half_written_copy(
        ledger: Ledger, tmp_path: Path, monkeypatch: Any) -> None:
    """A full disk while legacy-id-to-sub.csv (or outcomes.csv) is written: the error stands, and neither a
    truncated file under its name nor its half-written .tmp (legacy ids, usernames, subs) is left behind."""
    import errno

    import pipeline.reconcile as rec

    ledger.record_outcomes("acme", "pool_1", pd.DataFrame({
        "legacy_id": ["L1"], "outcome": ["imported"], "username": ["u1"], "sub": ["s-1"]}))
    path = tmp_path / "legacy-id-to-sub.csv"

    def full(handle: Any, frame: pd.DataFrame, header: bool = True) -> None:
        handle.write(b"legacy_id,user")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rec, "write_frame", full)
    with pytest.raises(OSError, match="No space left"):
        write_sub_mapping(ledger, "acme", path, pool_id="pool_1")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("ledger")) == []
