"""Whole-tenant uniqueness: usernames and sign-in aliases, resolved after every partition was seen.

A later partition can turn an earlier row into a duplicate, so resolution is two-pass: ``add`` records,
for each uniqueness key, compact numpy arrays (64-bit key hash, row number, optional order value) and
a dictionary-encoded masked value, and ``resolve`` decides once at the end which rows lose.

Memory: per key and row 8 (hash) + 4 (row number) + 8 (order value, only for keep=latest) bytes,
about 25 MB for 1,000,000 rows and three keys. The rows themselves (legacy id, tenant and the value
to mask in a reject line) are read back at the end from a ``RowSource``: the runner's staged
partitions, which hold exactly the rows given to ``add``, in the same order; without one the tracker
keeps those few columns itself (``KeptRows``).

Hash collisions: ``arrowtext.string_hashes`` gives a 64-bit hash of each value's bytes (numpy, the GIL
free). For n keys the chance of any collision is about n^2 / 2^65: 2.7e-8 at 1 million rows, 2.7e-6
at 10 million. A
collision would reject one row as a duplicate, visibly (it is written to the rejects file with the
legacy id it collided with), never drop it in silence.

Keys (import-rules facts 7, 16, 17, 46):
* ``cognito:username``, lower-cased when the pool is case-insensitive;
* ``preferred_username`` when it is an alias (same folding);
* ``email`` (lower-cased) and ``phone_number``: in alias pools only where the value is verified (a
  verified alias belongs to one account; unverified duplicates are allowed), in username-attribute
  pools every non-empty value.

Keys are resolved one after the other in that order; a row that lost on an earlier key no longer
takes part in later ones, so a rejected row never wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import arrow, lower_case, string_hashes, value_lengths
from pipeline.contract import USERNAME, VERIFIED_FLAG, PoolContract
from pipeline.errors import ConfigError
from pipeline.masking import mask_series
from pipeline.reasons import REJECT_COLUMNS, Reason
from pipeline.validation import rules

KEEP_POLICIES = ("first", "latest", "none")
STRING = pd.StringDtype("pyarrow")


@dataclass(frozen=True)
class DuplicatesPolicy:
    """Which member of a duplicate group survives: ``first`` seen (extraction = primary-key order),
    ``latest`` (greatest ``order_by`` value; ties go to the later row), or ``none`` (all rejected)."""

    keep: str = "first"
    order_by: str | None = None
    # columns the mapping asks to be unique on top of what the pool itself enforces (e.g. ``email``
    # in a plain pool, where Cognito would accept two users sharing one address)
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.keep not in KEEP_POLICIES:
            problems.append(f"duplicates.keep is {self.keep!r}; write one of {', '.join(KEEP_POLICIES)}")
        if self.keep == "latest" and not self.order_by:
            problems.append("duplicates.keep is 'latest' but duplicates.order_by is not set; name the "
                            "column whose greatest value wins (e.g. updated_at)")
        if problems:
            raise ConfigError("Invalid duplicates policy", problems)

    @classmethod
    def coerce(cls, policy: Any) -> DuplicatesPolicy:
        """Accept None (keep first), a mapping ``{keep, order_by}`` or any object with those attributes."""
        if policy is None:
            return cls()
        if isinstance(policy, cls):
            return policy
        if isinstance(policy, Mapping):
            return cls(keep=str(policy.get("keep", "first")), order_by=policy.get("order_by"),
                       keys=tuple(policy.get("keys") or ()))
        return cls(keep=str(getattr(policy, "keep", "first")), order_by=getattr(policy, "order_by", None),
                   keys=tuple(getattr(policy, "keys", ()) or ()))


@dataclass(frozen=True)
class UniqueKey:
    reason: Reason
    column: str
    label: str
    fold: bool
    verified_flag: str | None = None       # only rows whose flag is "true" take part


def unique_keys(contract: PoolContract, extra: tuple[str, ...] = ()) -> list[UniqueKey]:
    """The uniqueness keys of this pool, in resolution order, then the mapping's ``extra`` columns
    that the pool does not already make unique (every non-empty value counts there)."""
    fold = not contract.case_sensitive
    keys = [UniqueKey(Reason.DUPLICATE_USERNAME, USERNAME, "username", fold)]
    if "preferred_username" in contract.alias_attributes:
        keys.append(UniqueKey(Reason.DUPLICATE_USERNAME, "preferred_username", "preferred_username", fold))
    for attr, reason, fold_it in (("email", Reason.DUPLICATE_EMAIL, True),
                                  ("phone_number", Reason.DUPLICATE_PHONE, False)):
        if attr in contract.username_attributes:
            keys.append(UniqueKey(reason, attr, attr.replace("_", " "), fold_it))
        elif attr in contract.alias_attributes:
            keys.append(UniqueKey(reason, attr, "verified " + attr.replace("_", " "), fold_it,
                                  VERIFIED_FLAG[attr]))
    reasons = {"email": Reason.DUPLICATE_EMAIL, "phone_number": Reason.DUPLICATE_PHONE}
    for column in extra:
        column = USERNAME if column == "username" else column
        if column not in {k.column for k in keys}:
            fallback = Reason.DUPLICATE_USERNAME if column == USERNAME else Reason.DUPLICATE_VALUE
            keys.append(UniqueKey(reasons.get(column, fallback), column,
                                  column.replace("_", " "), column == "email" or fold))
    return [k for k in keys if k.column in contract.csv_header]


@dataclass
class _KeyStore:
    hashes: list[np.ndarray] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    order: list[np.ndarray] = field(default_factory=list)


class RowSource(Protocol):
    """The rows given to ``DuplicateTracker.add``, numbered from 0 in the order they came."""

    def take(self, rows: np.ndarray, columns: list[str]) -> pd.DataFrame: ...


class KeptRows:
    """A ``RowSource`` in memory: the tracker keeps the columns it needs of every row it is given."""

    def __init__(self) -> None:
        self._tables: list[pa.Table] = []
        self.columns: list[str] = []

    def add(self, frame: pd.DataFrame) -> None:
        self._tables.append(pa.Table.from_pandas(frame[self.columns], preserve_index=False))

    def take(self, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:
        table = pa.concat_tables(self._tables, promote_options="permissive").select(columns)
        return table.take(pa.array(rows, pa.int64())).to_pandas(types_mapper=lambda _: STRING)


def order_values(s: pd.Series) -> np.ndarray:
    """Comparable float64 of an order column: numbers as they are, ISO 8601 datetimes as epoch seconds,
    anything else (empty included) NaN, which never beats a real value."""
    values = np.full(len(s), np.nan)
    numeric = rules.fullmatch(s, rules.DECIMAL)
    if numeric.any():
        values[numeric] = np.asarray(pc.cast(arrow(s).filter(pa.array(numeric)), pa.float64()))
    todo = ~numeric & rules.filled(s)
    if todo.any():
        dt = pd.to_datetime(s[todo].astype(object), errors="coerce", utc=True, format="ISO8601")
        secs = (dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        values[np.flatnonzero(todo)] = secs.to_numpy("float64", na_value=np.nan)
    return values


class DuplicateTracker:
    """Collects uniqueness keys partition by partition; ``rejects()`` resolves them for the whole tenant.

    ``rows``: where the rows given to ``add`` can be read back (see ``RowSource``); by default the
    tracker keeps the few columns it needs itself."""

    def __init__(self, contract: PoolContract, policy: DuplicatesPolicy, rows: RowSource | None = None) -> None:
        self.policy = policy
        self.keys = unique_keys(contract, policy.keys)
        self._stores = [_KeyStore() for _ in self.keys]
        self._kept = KeptRows() if rows is None else None
        if self._kept is not None:
            self._kept.columns = ["_legacy_id", "_tenant", *dict.fromkeys(k.column for k in self.keys)]
        self._rows: RowSource = self._kept if self._kept is not None else rows   # type: ignore[assignment]
        self._n = 0
        self._result: pd.DataFrame | None = None

    def add(self, valid: pd.DataFrame) -> None:
        """Record the keys of rows that passed every per-row rule (a prepared, clean frame)."""
        if not len(valid):
            return
        self._result = None
        rows = np.arange(self._n, self._n + len(valid), dtype=np.int32)   # 2**31 rows is plenty
        self._n += len(valid)
        if self._kept is not None:
            self._kept.add(valid)
        order = None
        if self.policy.keep == "latest":
            col = self.policy.order_by
            order = order_values(valid[col]) if col in valid.columns else np.full(len(valid), np.nan)
        for key, store in zip(self.keys, self._stores, strict=True):
            s = valid[key.column]
            take = value_lengths(s) > 0          # not empty, not NA: from the offsets
            if key.verified_flag is not None:
                take &= rules.in_values(valid[key.verified_flag], ["true"])
            if not take.any():
                continue
            values = s[take]
            if key.fold:
                values = lower_case(values)
            store.hashes.append(string_hashes(values))
            store.rows.append(rows[take])
            if order is not None:
                store.order.append(order[take])

    def rejects(self) -> pd.DataFrame:
        """REJECT_COLUMNS lines for every row that loses a duplicate group (computed once, cached)."""
        return self._resolved()[REJECT_COLUMNS].copy()

    def loser_rows(self) -> np.ndarray:
        """The row numbers (in the order rows were added, as ``RowSource`` counts them) of those rows."""
        return self._resolved()["_row"].to_numpy(np.int64)

    def _resolved(self) -> pd.DataFrame:
        if self._result is None:
            self._result = self._resolve()
        return self._result

    def _resolve(self) -> pd.DataFrame:
        dead = np.zeros(self._n, dtype=bool)
        found: list[tuple[UniqueKey, np.ndarray, np.ndarray | None]] = []   # key, loser rows, winner rows
        for key, store in zip(self.keys, self._stores, strict=True):
            if not store.hashes:
                continue
            # concatenate in place of the per-partition pieces, so the two never coexist (peak memory)
            hashes = np.concatenate(store.hashes)
            store.hashes = [hashes]
            rows = np.concatenate(store.rows)
            store.rows = [rows]
            alive = np.flatnonzero(~dead[rows]).astype(np.int32)
            order = None
            if store.order:
                order = np.concatenate(store.order)
                store.order = [order]
                order = order[alive]
            losers, winners = self._losers(hashes[alive], alive, order)
            if not len(losers):
                continue
            dead[rows[losers]] = True
            found.append((key, rows[losers], None if winners is None else rows[winners]))
        if not found:
            return pd.DataFrame({"_row": pd.Series(dtype=np.int64),
                                 **{c: pd.Series(dtype=STRING) for c in REJECT_COLUMNS}})
        # one read of the rows source for every key's losers and winners: each read maps every part
        columns = ["_legacy_id", "_tenant", *dict.fromkeys(key.column for key, _, _ in found)]
        read = self._rows.take(np.concatenate([r for _, lose, win in found for r in (lose, win) if r is not None]),
                               columns)
        at = 0

        def following(n: int) -> pd.DataFrame:
            nonlocal at
            at += n
            return read.iloc[at - n:at].reset_index(drop=True)

        parts: list[pd.DataFrame] = []
        for key, loser_rows, winner_rows in found:
            n = len(loser_rows)
            lost = following(n)
            if winner_rows is None:
                detail = pd.Series("all members rejected", index=range(n), dtype=STRING)
            else:
                kept = following(n)["_legacy_id"].astype(STRING)
                detail = f"same {key.label} as legacy id " + kept + f", which is kept ({self.policy.keep})"
            parts.append(pd.DataFrame({
                "_row": loser_rows,
                "legacy_id": lost["_legacy_id"].astype(STRING),
                "tenant": lost["_tenant"].astype(STRING),
                "reason": pd.Series(key.reason.value, index=range(n), dtype=STRING),
                "column": pd.Series(key.column, index=range(n), dtype=STRING),
                "masked_value": mask_series(key.column, lost[key.column]).astype(STRING),
                "detail": detail,
            }))
        out = pd.concat(parts, ignore_index=True).sort_values("_row", kind="stable")
        return out[["_row", *REJECT_COLUMNS]].reset_index(drop=True)

    def _losers(self, hashes: np.ndarray, positions: np.ndarray,
                order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Positions (into the key's arrays) of the rows that lose, and of the row each one lost to.

        Only the members of a group of two or more are sorted: a hash table finds them in one pass
        (~35 ms at 850,000 keys, where a stable sort of all of them took ~80 ms), and in the order
        they came, so the sort below sees them as it would have among the rest."""
        member = pd.Series(hashes, copy=False).duplicated(keep=False).to_numpy()
        if not member.all():
            sub = np.flatnonzero(member)
            hashes, positions = hashes[sub], positions[sub]
            order = None if order is None else order[sub]
        if not len(hashes):
            return positions, None if self.policy.keep == "none" else positions
        if order is None:
            perm = np.argsort(hashes, kind="stable")          # positions ascend: first seen leads
            lead_last = False
        else:
            order = np.where(np.isnan(order), -np.inf, order)
            perm = np.lexsort((positions, order, hashes))      # greatest order, then latest row, last
            lead_last = True
        perm = perm.astype(np.int32)
        h = hashes[perm]
        starts = np.empty(len(h), dtype=bool)
        starts[:1] = True
        np.not_equal(h[1:], h[:-1], out=starts[1:])
        del h
        group = np.cumsum(starts, dtype=np.int32) - 1
        counts = np.bincount(group)
        in_dup = counts[group] > 1
        if self.policy.keep == "none":
            return positions[perm[in_dup]], None
        if lead_last:
            leader = np.empty(len(starts), dtype=bool)
            leader[:-1] = starts[1:]
            leader[-1:] = True
        else:
            leader = starts
        leader_of_group = np.empty(len(counts), dtype=np.int32)
        leader_of_group[group[leader]] = perm[leader]
        lose = in_dup & ~leader
        return positions[perm[lose]], positions[leader_of_group[group[lose]]]
