"""Who is already in the pool, how an imported user is created in moto's backend, and AdminGetUser's lookup.

``PoolIndex`` is built once per job from ``pool.users`` (so users made through moto's own API count)
and kept up to date as the job creates users: every uniqueness check is a set lookup, never a scan.
Users are ``CognitoIdpUser`` objects put straight into ``pool.users``, which is what moto's ListUsers
and AdminGetUser read; the caller holds the service lock that also guards moto's cognito-idp requests.
"""

from __future__ import annotations

from moto.cognitoidp.models import CognitoIdpUser, CognitoIdpUserPool, UserStatus

from pipeline.localcognito.listing import generation
from pipeline.localcognito.rules import USERNAME, VERIFIED, PoolRules

MSG_EXISTS = "The user already exists."                                   # fact 19

# Per pool whose UsernameAttributes name email or phone (fact 16): sign-in value -> user, for AdminGetUser.
_SIGN_IN: dict[str, tuple[CognitoIdpUserPool, dict[str, CognitoIdpUser]]] = {}


def get_user(pool: CognitoIdpUserPool, username: str) -> CognitoIdpUser | None:
    """The user AdminGetUser names, as moto's ``_get_user`` finds it, without its scan where it can.

    In a pool whose UsernameAttributes are email or phone, moto compares every user's attributes (each
    flattened anew) with the name: a whole-pool scan per call, which made a harvest's 200 lookups take
    most of a job's time (globex-us: 69 s to import 223,000 users, against 16 s for 213,000 in acme-jp).
    An index of the sign-in values, filled when first asked and as imports create users, answers
    instead; a hit is checked against the pool, and a miss falls back to moto's own lookup, so users
    made, changed or deleted through moto's API are found as before. Call under the service lock.
    """
    user = _exact(pool, username)
    if user is None and (pool.extended_config.get("UsernameConfiguration") or {}).get("CaseSensitive") is False:
        user = _case_variant(pool, username)
    return user


def _exact(pool: CognitoIdpUserPool, username: str) -> CognitoIdpUser | None:
    attributes = pool.extended_config.get("UsernameAttributes") or []
    if not attributes:
        return pool.users.get(username)
    kept = _SIGN_IN.get(pool.id)
    if kept is None or kept[0] is not pool:
        kept = _SIGN_IN[pool.id] = (pool, {})
        for each in pool.users.values():
            _remember(kept[1], attributes, each)
    user = kept[1].get(username)
    if (user is not None and pool.users.get(user.username) is user
            and any(user.attribute_lookup.get(a) == username for a in attributes)):
        return user
    # a sub (a UUID, never an email or a phone number) is the real Username; else moto's scan
    return pool.users.get(username) or pool._get_user(username)


class _Folded:
    """A case-insensitive pool's lower-cased usernames (and, in fact-16 pools, sign-in values) -> user, as
    of moto write ``generation`` and pool ``size``; users the import creates are added as they come."""

    def __init__(self, pool: CognitoIdpUserPool) -> None:
        self.pool, self.generation, self.size = pool, generation(), 0
        self.attributes = pool.extended_config.get("UsernameAttributes") or []
        self.users: dict[str, CognitoIdpUser] = {}
        for user in list(pool.users.values()):
            self.add(user)

    def add(self, user: CognitoIdpUser) -> None:
        for value in (user.username, *(user.attribute_lookup.get(a) for a in self.attributes)):
            if value:
                self.users.setdefault(value.lower(), user)
        self.size += 1

    def current(self, pool: CognitoIdpUserPool) -> bool:
        return self.pool is pool and self.generation == generation() and self.size == len(pool.users)


_FOLDED: dict[str, _Folded] = {}


def _case_variant(pool: CognitoIdpUserPool, username: str) -> CognitoIdpUser | None:
    """The user a case variant of its username (or, in fact-16 pools, of its sign-in value) names, in a
    pool with ``CaseSensitive: false``, where such variants are the same user (fact 46): an index built
    on the first variant asked for, kept up to date as imports create users, and built again once a
    moto write (a deletion, an update) may have changed the pool."""
    kept = _FOLDED.get(pool.id)
    if kept is None or not kept.current(pool):
        kept = _FOLDED[pool.id] = _Folded(pool)
    return kept.users.get(username.lower())


def _remember(index: dict[str, CognitoIdpUser], attributes: list[str], user: CognitoIdpUser) -> None:
    for attribute in attributes:
        value = user.attribute_lookup.get(attribute)
        if value:
            index.setdefault(value, user)     # the first user holding it, as moto's scan finds it


class PoolIndex:
    def __init__(self, pool: CognitoIdpUserPool, rules: PoolRules) -> None:
        self.pool, self.rules = pool, rules
        self.usernames: set[str] = set()
        self.sign_in: dict[str, set[str]] = {a: set() for a in rules.username_attributes}
        self.verified: dict[str, set[str]] = {a: set() for a in VERIFIED if a in rules.aliases}
        self.preferred: set[str] | None = set() if "preferred_username" in rules.aliases else None
        for user in list(pool.users.values()):
            self._add(user.username, user.attribute_lookup)

    def _key(self, attr: str, value: str) -> str:
        return self.rules.fold(value) if attr in ("email", "preferred_username") else value

    def _add(self, username: str, attrs: dict[str, str]) -> None:
        self.usernames.add(self.rules.fold(username))
        for attr, values in self.sign_in.items():
            if attrs.get(attr):
                values.add(self._key(attr, attrs[attr]))
        for attr, values in self.verified.items():
            if attrs.get(attr) and attrs.get(VERIFIED[attr]) == "true":
                values.add(self._key(attr, attrs[attr]))
        if self.preferred is not None and attrs.get("preferred_username"):
            self.preferred.add(self.rules.fold(attrs["preferred_username"]))

    def conflict(self, row: dict[str, str], attrs: dict[str, str]) -> tuple[str, str] | None:
        """("SKIPPED"|"FAILED", message) when the row collides with a user already in the pool (U5)."""
        username = row[USERNAME]
        if self.rules.username_attributes:                                # fact 16
            for attr, values in self.sign_in.items():
                if attrs.get(attr) and self._key(attr, attrs[attr]) in values:
                    if attrs[attr] == username:
                        return "SKIPPED", MSG_EXISTS
                    return "FAILED", f"The {attr} value is already used by another user."
        elif self.rules.fold(username) in self.usernames:                 # facts 19, 46
            return "SKIPPED", MSG_EXISTS
        for attr, values in self.verified.items():                        # fact 17
            if attrs.get(VERIFIED[attr]) == "true" and self._key(attr, attrs[attr]) in values:
                return "FAILED", f"The verified {attr} value is already used by another user."
        if self.preferred is not None and attrs.get("preferred_username"):
            if self.rules.fold(attrs["preferred_username"]) in self.preferred:
                return "FAILED", "The preferred_username value is already used by another user."
        return None

    def create(self, row: dict[str, str], attrs: dict[str, str]) -> CognitoIdpUser:
        """A RESET_REQUIRED, enabled user with a fresh sub (fact 20); Username = sub in fact-16 pools."""
        username = None if self.rules.username_attributes else row[USERNAME]
        user = CognitoIdpUser(self.pool.id, username, None, UserStatus.RESET_REQUIRED,
                              [{"Name": k, "Value": v} for k, v in attrs.items()])
        self.pool.users[user.username] = user
        self._add(user.username, attrs)
        kept = _SIGN_IN.get(self.pool.id)
        if kept is not None and kept[0] is self.pool:
            _remember(kept[1], self.pool.extended_config.get("UsernameAttributes") or [], user)
        folded = _FOLDED.get(self.pool.id)
        if folded is not None and folded.pool is self.pool:
            folded.add(user)
        return user
