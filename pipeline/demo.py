"""A deterministic, messy, multi-tenant legacy user table (``app_users``) for demos, tests and benchmarks.

The rows look like a decade-old application's: logins in mixed case or with a space, emails with
surrounding whitespace or no ``@``, five encodings of a boolean, national phone formats, names in
Japanese and German, a family name that is literally ``Null``, commas and newlines inside names,
soft-deleted and disabled accounts. Every value is generated in its *text form* (``None`` for NULL),
exactly as ``pipeline.extract`` returns it from any of the three databases, so a generated frame can be
compared with an extracted one cell by cell.

* ``generate(n_per_tenant, seed)``: the rows as one frame (small demos, tests).
* ``iter_blocks(n_rows, seed)``: the same rows in blocks of ``BLOCK_ROWS`` (a million rows in ~100 MB).
* ``load_table(url, n_rows)``: (re)create the table in PostgreSQL (COPY), MariaDB or SQLite.
* ``create_sqlite_demo(path)``: the embedded default source database.
* ``messy_counts(frame)``: how many rows of each messy kind each tenant has, computed from the frame,
  so tests assert against the data rather than against hard-coded numbers.

Determinism: a row depends only on ``seed``, its ``id`` and the tenant list, never on how many rows
are asked for, so ``generate(100)`` is the first 300 rows of ``load_table(url, 3000)``. Ids are
interleaved across tenants (id 1 is the first tenant's, id 2 the second's...). The first
``SHOWCASE_ROWS`` rows of every tenant show each messy case once (the tenant's row 0 is entirely
clean; each following row carries exactly one messy value), so any ``n_per_tenant >= SHOWCASE_ROWS``
contains every case for every tenant; later rows are messy at realistic rates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.db import TableColumn, open_source, replace_table
from pipeline.errors import ExtractError

STRING = pd.StringDtype("pyarrow")
BLOCK_ROWS = 25_000
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Tenant:
    code: str
    country: str       # "JP" | "US" | "DE": names, phone formats, locale
    domain: str


DEFAULT_TENANTS: tuple[Tenant, ...] = (
    Tenant("acme-jp", "JP", "acme.example.jp"),
    Tenant("globex-us", "US", "globex.example.com"),
    Tenant("initech-de", "DE", "initech.example.de"),
)

COLUMNS: tuple[TableColumn, ...] = (
    TableColumn("id", "integer", nullable=False, primary_key=True),
    TableColumn("tenant_code", "varchar(32)", nullable=False),
    TableColumn("login", "varchar(200)"),
    TableColumn("email", "varchar(320)"),
    TableColumn("email_confirmed", "varchar(8)"),
    TableColumn("phone", "varchar(64)"),
    TableColumn("phone_confirmed", "varchar(8)"),
    TableColumn("first_name", "varchar(200)"),
    TableColumn("last_name", "varchar(200)"),
    TableColumn("birth_date", "date"),
    TableColumn("locale", "varchar(16)"),
    TableColumn("role", "varchar(32)"),
    TableColumn("is_active", "smallint", nullable=False),
    TableColumn("deleted_at", "timestamp"),
    TableColumn("created_at", "timestamp", nullable=False),
    TableColumn("updated_at", "timestamp", nullable=False),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)

# (native, romanised) pairs; the romanised form builds logins and emails.
GIVEN = {
    "JP": [("太郎", "taro"), ("花子", "hanako"), ("翔太", "shota"), ("美咲", "misaki"), ("さくら", "sakura"),
           ("健一", "kenichi"), ("陽菜", "hina"), ("大輔", "daisuke")],
    "US": [("James", "james"), ("Mary", "mary"), ("José", "jose"), ("Michael", "michael"),
           ("Zoë", "zoe"), ("Linda", "linda"), ("Chloé", "chloe"), ("Nan", "nan")],
    "DE": [("Jürgen", "juergen"), ("Anna", "anna"), ("Käthe", "kaethe"), ("Björn", "bjoern"),
           ("Lena", "lena"), ("Günther", "guenther"), ("Sören", "soeren"), ("Maximilian", "maximilian")],
}
FAMILY = {
    "JP": [("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
           ("渡辺", "watanabe"), ("伊藤", "ito"), ("山本", "yamamoto"), ("中村", "nakamura")],
    "US": [("Smith", "smith"), ("Johnson", "johnson"), ("García", "garcia"), ("O'Brien", "obrien"),
           ("Nguyen", "nguyen"), ("Williams", "williams"), ("Brown", "brown"), ("Davis", "davis")],
    "DE": [("Müller", "mueller"), ("Schröder", "schroeder"), ("Weiß", "weiss"), ("Groß", "gross"),
           ("Köhler", "koehler"), ("Schmidt", "schmidt"), ("Fischer", "fischer"), ("Meißner", "meissner")],
}
LOCALES = {"JP": "ja-JP", "US": "en-US", "DE": "de-DE"}
BOOL_TOKENS: tuple[str | None, ...] = ("t", "f", "1", "0", "yes", "no", "Y", "N", None)
BOOL_WEIGHTS = (0.2, 0.08, 0.17, 0.05, 0.1, 0.05, 0.15, 0.05, 0.15)
# Most legacy emails were confirmed (pools that auto-verify email reject the rest): ~90% true tokens.
EMAIL_BOOL_WEIGHTS = (0.3, 0.02, 0.25, 0.02, 0.15, 0.01, 0.2, 0.02, 0.03)
TRUE_TOKENS = frozenset({"t", "1", "yes", "y", "true"})
FALSE_TOKENS = frozenset({"f", "0", "no", "n", "false"})
PHONE_JUNK = ("n/a", "12", "none", "-", "0000")
ROLES = ("admin", "member", "viewer")

# Per messy column: kinds and the rate of each among ordinary rows (the first kind is "clean").
KINDS: dict[str, tuple[tuple[str, float], ...]] = {
    "login": (("clean", 0.905), ("mixed", 0.04), ("space", 0.015), ("dup", 0.015), ("empty", 0.01),
              ("null", 0.015)),
    "email": (("clean", 0.83), ("mixed", 0.05), ("space", 0.04), ("dup", 0.03), ("at_end", 0.01),
              ("no_at", 0.01), ("empty", 0.01), ("null", 0.02)),
    "phone": (("clean", 0.38), ("national_b", 0.30), ("e164", 0.12), ("junk", 0.04), ("null", 0.16)),
    "first_name": (("clean", 0.985), ("comma", 0.01), ("newline", 0.005)),
    "last_name": (("clean", 0.985), ("null_word", 0.005), ("comma", 0.01)),
    "birth_date": (("clean", 0.9), ("null", 0.1)),
    "is_active": (("clean", 0.96), ("inactive", 0.04)),
    "deleted_at": (("clean", 0.97), ("deleted", 0.03)),
}
# Row k (k >= 1) of every tenant shows SHOWCASE[k - 1]; "unicode" and "n/a"/"12" are extra forced kinds.
SHOWCASE: tuple[tuple[str, str], ...] = (
    ("login", "mixed"), ("login", "space"), ("login", "dup"), ("login", "empty"), ("login", "null"),
    ("email", "mixed"), ("email", "space"), ("email", "dup"), ("email", "at_end"), ("email", "no_at"),
    ("email", "empty"), ("email", "null"),
    ("phone", "national_b"), ("phone", "e164"), ("phone", "junk_na"), ("phone", "junk_short"),
    ("phone", "null"),
    ("first_name", "unicode"), ("first_name", "comma"), ("first_name", "newline"),
    ("last_name", "null_word"), ("last_name", "comma"),
    ("birth_date", "null"), ("is_active", "inactive"), ("deleted_at", "deleted"),
)
SHOWCASE_ROWS = len(SHOWCASE) + 1

_BIRTH_START = np.datetime64("1940-01-01", "D")
_EPOCH_START = np.datetime64("2012-01-01T00:00:00", "s")
_EPOCH_END = np.datetime64("2024-12-31T23:59:59", "s")
_LAST_UPDATE = np.datetime64("2025-06-30T23:59:59", "s")


def _series(values: object) -> pd.Series:
    return pd.Series(values, dtype=STRING)


def _digits(rng: np.random.Generator, size: int, width: int) -> pd.Series:
    return _series(rng.integers(0, 10 ** width, size).astype(str)).str.zfill(width)


def _phones(country: str, kind: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """National formats (two per country), strict E.164, junk, NULL."""
    n = len(kind)
    if country == "JP":
        mobile = _series(rng.choice(["070", "080", "090"], n))
        a, b = _digits(rng, n, 4), _digits(rng, n, 4)
        area = _series(rng.choice(["3", "6"], n))
        formats = {"clean": mobile + "-" + a + "-" + b, "national_b": "0" + area + "-" + b + "-" + a,
                   "e164": "+81" + mobile.str.slice(1) + a + b}
    elif country == "US":
        area = _series(rng.choice(["212", "415", "617", "312", "206", "512", "303", "404"], n))
        exch = _series(rng.integers(201, 999, n).astype(str))
        line = _digits(rng, n, 4)
        formats = {"clean": "(" + area + ") " + exch + "-" + line,
                   "national_b": area + "." + exch + "." + line, "e164": "+1" + area + exch + line}
    else:
        area = _series(rng.choice(["30", "40", "89", "69", "221"], n))
        local = _digits(rng, n, 7)
        mobile = _series(rng.choice(["151", "160", "170", "176"], n))
        mnum = _digits(rng, n, 8)
        formats = {"clean": "0" + area + " " + local, "national_b": "0" + mobile + " " + mnum,
                   "e164": "+49" + mobile + mnum}
    out = formats["clean"].copy()
    for name in ("national_b", "e164"):
        out[kind == name] = formats[name][kind == name]
    junk = _series(rng.choice(PHONE_JUNK, n))
    out[kind == "junk"] = junk[kind == "junk"]
    out[kind == "junk_na"] = "n/a"
    out[kind == "junk_short"] = "12"
    out[kind == "null"] = pd.NA
    return out


def _timestamps(values: np.ndarray) -> pd.Series:
    return _series(np.datetime_as_string(values, unit="s")).str.replace("T", " ", regex=False)


def _block(start_id: int, n_rows: int, seed: int, tenants: Sequence[Tenant]) -> pd.DataFrame:
    """Rows ``start_id`` .. ``start_id + n_rows - 1``; ``start_id - 1`` is a multiple of BLOCK_ROWS."""
    block_no = (start_id - 1) // BLOCK_ROWS
    rng = np.random.default_rng([seed, block_no, GENERATOR_VERSION])
    size = BLOCK_ROWS           # always draw a whole block, then cut: rows do not depend on n_rows
    n_t = len(tenants)
    ids = np.arange(start_id, start_id + size)
    tix = (ids - 1) % n_t
    k = (ids - 1) // n_t

    kinds: dict[str, np.ndarray] = {}
    for col, spec in KINDS.items():
        names = np.array([s[0] for s in spec], dtype=object)
        kinds[col] = names[rng.choice(len(spec), size, p=[s[1] for s in spec])]
        kinds[col][k < SHOWCASE_ROWS] = "clean"
    for i, (col, kind) in enumerate(SHOWCASE, start=1):
        kinds[col][k == i] = kind
    # a duplicate copies an earlier row of the same tenant in this block (showcase: the clean row 0)
    back = {c: rng.integers(1, 40, size) for c in ("login", "email")}
    for col in back:
        back[col] = np.where(k < SHOWCASE_ROWS, k, back[col])
        src = ids - back[col] * n_t
        bad = (kinds[col] == "dup") & (src < start_id)
        kinds[col][bad] = "clean"
        back[col] = np.where(src >= start_id, src - start_id, np.arange(size))

    gi = rng.integers(0, 1 << 30, size)
    fi = rng.integers(0, 1 << 30, size)
    given_native = np.empty(size, dtype=object)
    given_roman = np.empty(size, dtype=object)
    family_native = np.empty(size, dtype=object)
    family_roman = np.empty(size, dtype=object)
    for t, tenant in enumerate(tenants):
        m = tix == t
        g, f = GIVEN[tenant.country], FAMILY[tenant.country]
        non_ascii = [i for i, (native, _) in enumerate(g) if not native.isascii()]
        pick = gi[m] % len(g)
        pick = np.where(kinds["first_name"][m] == "unicode", np.array(non_ascii)[pick % len(non_ascii)], pick)
        given_native[m] = np.array([x[0] for x in g], dtype=object)[pick]
        given_roman[m] = np.array([x[1] for x in g], dtype=object)[pick]
        family_native[m] = np.array([x[0] for x in f], dtype=object)[fi[m] % len(f)]
        family_roman[m] = np.array([x[1] for x in f], dtype=object)[fi[m] % len(f)]
    g_native, g_roman = _series(given_native), _series(given_roman)
    f_native, f_roman = _series(family_native), _series(family_roman)
    kk = _series((k + 1).astype(str))
    domain = _series(np.array([t.domain for t in tenants], dtype=object)[tix])

    def apply(col: str, clean: pd.Series, variants: dict[str, object]) -> pd.Series:
        out = clean.copy()
        for name, value in variants.items():
            sel = kinds[col] == name
            out[sel] = value[sel] if isinstance(value, pd.Series) else value
        return out

    login_base = g_roman.str.slice(0, 1) + f_roman + kk
    login = apply("login", login_base, {
        "mixed": g_roman.str.slice(0, 1).str.upper() + f_roman.str.capitalize() + kk,
        "space": g_roman + " " + f_roman + kk,
        "dup": _series(login_base.to_numpy()[back["login"]]).str.upper(),
        "empty": "", "null": pd.NA})
    email_base = g_roman + "." + f_roman + kk + "@" + domain
    dup_email = _series(email_base.to_numpy()[back["email"]])
    email = apply("email", email_base, {
        "mixed": g_roman.str.capitalize() + "." + f_roman.str.capitalize() + kk + "@" + domain.str.upper(),
        "space": " " + email_base + "  ",
        "dup": (dup_email.str.upper()).where(pd.Series(ids % 2 == 0), " " + dup_email),
        "at_end": g_roman + "@", "no_at": g_roman + f_roman + kk + "-no-at-sign", "empty": "",
        "null": pd.NA})

    token_idx = np.stack([rng.choice(len(BOOL_TOKENS), size, p=EMAIL_BOOL_WEIGHTS),
                          rng.choice(len(BOOL_TOKENS), size, p=BOOL_WEIGHTS)])
    show = (k >= 1) & (k < SHOWCASE_ROWS)
    token_idx[0] = np.where(show, (k - 1) % len(BOOL_TOKENS), np.where(k == 0, 0, token_idx[0]))
    token_idx[1] = np.where(show, (k + 3) % len(BOOL_TOKENS), np.where(k == 0, 0, token_idx[1]))
    tokens = np.array(BOOL_TOKENS, dtype=object)

    phone = _series(np.full(size, None, dtype=object))
    for t, tenant in enumerate(tenants):
        m = tix == t
        phone[m] = _phones(tenant.country, kinds["phone"][m], rng).to_numpy()

    # A legacy system rarely marks a value it does not hold as confirmed: outside the showcase rows, a
    # missing phone or email has no confirmation flag (NULL), so the demo's rejects stay realistic.
    ordinary = k >= SHOWCASE_ROWS
    token_idx[1] = np.where(ordinary & phone.isna().to_numpy(), len(BOOL_TOKENS) - 1, token_idx[1])
    token_idx[0] = np.where(ordinary & email.isna().to_numpy(), len(BOOL_TOKENS) - 1, token_idx[0])

    first = apply("first_name", g_native, {"comma": g_native + ", " + g_roman.str.capitalize(),
                                           "newline": g_native + "\n" + g_roman.str.capitalize()})
    last = apply("last_name", f_native, {"null_word": "Null", "comma": f_native + ", Jr."})

    birth = _BIRTH_START + rng.integers(0, 67 * 365, size).astype("timedelta64[D]")
    birth_s = _series(np.datetime_as_string(birth, unit="D"))
    birth_s[kinds["birth_date"] == "null"] = pd.NA

    span = int((_EPOCH_END - _EPOCH_START).astype(int))
    created = _EPOCH_START + rng.integers(0, span, size).astype("timedelta64[s]")
    updated = np.minimum(created + rng.integers(0, 800 * 86400, size).astype("timedelta64[s]"), _LAST_UPDATE)
    deleted = _timestamps(updated)
    deleted[kinds["deleted_at"] != "deleted"] = pd.NA

    own_locale = np.array([LOCALES[t.country] for t in tenants], dtype=object)[tix]
    other = rng.choice(list(LOCALES.values()), size)
    locale = np.where((rng.random(size) < 0.05) & (k >= SHOWCASE_ROWS), other, own_locale)
    role = rng.choice(ROLES, size, p=(0.05, 0.75, 0.2))

    frame = pd.DataFrame({
        "id": _series(ids.astype(str)),
        "tenant_code": _series(np.array([t.code for t in tenants], dtype=object)[tix]),
        "login": login,
        "email": email,
        "email_confirmed": _series(tokens[token_idx[0]]),
        "phone": phone,
        "phone_confirmed": _series(tokens[token_idx[1]]),
        "first_name": first,
        "last_name": last,
        "birth_date": birth_s,
        "locale": _series(locale),
        "role": _series(role),
        "is_active": _series(np.where(kinds["is_active"] == "inactive", "0", "1")),
        "deleted_at": deleted,
        "created_at": _timestamps(created),
        "updated_at": _timestamps(updated),
    })
    return frame.iloc[:n_rows].reset_index(drop=True)


def iter_blocks(n_rows: int, seed: int = 7, tenants: Sequence[Tenant] = DEFAULT_TENANTS,
                block_rows: int = BLOCK_ROWS) -> Iterator[pd.DataFrame]:
    """The first ``n_rows`` rows (all tenants interleaved), at most ``BLOCK_ROWS`` per frame."""
    if not tenants:
        raise ValueError("at least one tenant is needed")
    del block_rows  # the block size is fixed: it is part of what makes the rows reproducible
    for start in range(1, n_rows + 1, BLOCK_ROWS):
        frame = _block(start, min(BLOCK_ROWS, n_rows - start + 1), seed, tenants)
        frame.index = pd.RangeIndex(start - 1, start - 1 + len(frame))
        yield frame


def generate(n_per_tenant: int, seed: int = 7, tenants: Sequence[Tenant] = DEFAULT_TENANTS) -> pd.DataFrame:
    """``n_per_tenant`` rows for each tenant, as one frame of strings (``<NA>`` = NULL), ordered by id.

    With ``n_per_tenant >= SHOWCASE_ROWS`` every messy case occurs for every tenant. For a million
    rows prefer ``iter_blocks`` (bounded memory).
    """
    frames = list(iter_blocks(n_per_tenant * len(tenants), seed, tenants))
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=STRING) for c in COLUMN_NAMES})
    return pd.concat(frames) if len(frames) > 1 else frames[0]


def load_table(url: str, n_rows: int, tenants: Sequence[Tenant] = DEFAULT_TENANTS, seed: int = 7,
               table: str = "app_users") -> int:
    """Drop and (re)create ``table`` at ``url`` holding the first ``n_rows`` generated rows.

    PostgreSQL loads through ``COPY FROM STDIN`` (a million rows in seconds); MariaDB and SQLite
    through batched inserts. Returns the number of rows written.
    """
    return replace_table(url, table, COLUMNS, iter_blocks(n_rows, seed, tenants))


def create_sqlite_demo(path: Path, n_per_tenant: int = 400, seed: int = 7) -> Path:
    """The embedded demo database at ``path``: kept if it already holds this demo, otherwise built.

    Built into a temporary file and renamed into place, so an interrupted build never leaves a half
    database behind. A ``demo_info`` table records what was generated.
    """
    path = Path(path)
    n_rows = n_per_tenant * len(DEFAULT_TENANTS)
    if path.is_file() and _demo_info(path) == (n_per_tenant, seed, GENERATOR_VERSION):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        load_table(f"sqlite:///{tmp}", n_rows, DEFAULT_TENANTS, seed)
        info = pd.DataFrame({"n_per_tenant": [str(n_per_tenant)], "seed": [str(seed)],
                             "generator_version": [str(GENERATOR_VERSION)]})
        replace_table(f"sqlite:///{tmp}", "demo_info",
                      [TableColumn(c, "integer", nullable=False) for c in info.columns], [info])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _demo_info(path: Path) -> tuple[int, int, int] | None:
    try:
        with open_source(f"sqlite:///{path}") as db:
            n = db.scalar("SELECT n_per_tenant FROM demo_info")
            seed = db.scalar("SELECT seed FROM demo_info")
            version = db.scalar("SELECT generator_version FROM demo_info")
            rows = db.scalar("SELECT COUNT(*) FROM app_users")
    except ExtractError:
        return None
    if not (isinstance(n, int) and isinstance(seed, int) and isinstance(version, int)):
        return None   # not written by this generator: built again
    if rows != n * len(DEFAULT_TENANTS):
        return None
    return (n, seed, version)


# -- expected counts ------------------------------------------------------------------------------

EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


def messy_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each messy kind per tenant (index ``tenant_code``), computed from the values themselves.

    Works on a generated or an extracted frame (text forms); filter it first to count a subset, e.g.
    ``messy_counts(df[df.deleted_at.isna()])``. Rules, per tenant:

    * ``login_*``: ``null``, ``empty`` (``''``), ``with_space``, ``mixed_case`` (differs from its
      lower case), ``casefold_duplicate`` (rows whose lower-cased login another row also has).
    * ``email_*``: ``null``, ``empty``, ``surrounding_space``, ``mixed_case`` (after trimming),
      ``invalid`` (trimmed, non-empty, not ``x@y.z``), ``duplicate_rows`` / ``duplicate_extra`` (rows
      whose lower-cased trimmed valid email is shared / those beyond the first of each group).
    * ``email_confirmed_*`` / ``phone_confirmed_*``: ``true`` (t, 1, yes, Y), ``false`` (f, 0, no, N),
      ``null``.
    * ``phone_*``: ``null``, ``e164`` (starts with ``+``), ``junk`` (fewer than 6 digits), ``national``.
    * names: ``first_name_non_ascii``, ``first_name_comma``, ``first_name_newline``,
      ``last_name_null_word`` (the text ``Null``, any case), ``last_name_comma``.
    * ``birth_date_null``, ``inactive`` (``is_active == '0'``), ``soft_deleted``, ``rows``.
    """
    df = frame
    login, email, phone = df["login"], df["email"], df["phone"]
    trimmed = email.str.strip()
    valid = trimmed.str.fullmatch(EMAIL_PATTERN).fillna(False).astype(bool)
    norm_email = trimmed.str.lower().where(valid)
    login_key = login.str.lower().where(login.notna() & (login != ""))
    tenant = df["tenant_code"]

    def shared(key: pd.Series) -> pd.Series:
        group = key.groupby([tenant, key]).transform("size")
        return key.notna() & (group.reindex(key.index).fillna(0) > 1)

    digits = phone.str.count(r"\d")
    flags: dict[str, pd.Series] = {
        "rows": pd.Series(True, index=df.index),
        "login_null": login.isna(),
        "login_empty": login == "",
        "login_with_space": login.str.contains(" ", regex=False),
        "login_mixed_case": login != login.str.lower(),
        "login_casefold_duplicate": shared(login_key),
        "email_null": email.isna(),
        "email_empty": trimmed == "",
        "email_surrounding_space": email != trimmed,
        "email_mixed_case": trimmed != trimmed.str.lower(),
        "email_invalid": (trimmed != "") & ~valid,
        "email_duplicate_rows": shared(norm_email),
        "phone_null": phone.isna(),
        "phone_e164": phone.str.startswith("+"),
        "phone_junk": phone.notna() & (digits < 6),
        "phone_national": phone.notna() & ~phone.str.startswith("+") & (digits >= 6),
        "first_name_non_ascii": ~df["first_name"].map(str.isascii, na_action="ignore").astype("boolean"),
        "first_name_comma": df["first_name"].str.contains(",", regex=False),
        "first_name_newline": df["first_name"].str.contains("\n", regex=False),
        "last_name_null_word": df["last_name"].str.lower() == "null",
        "last_name_comma": df["last_name"].str.contains(",", regex=False),
        "birth_date_null": df["birth_date"].isna(),
        "inactive": df["is_active"] == "0",
        "soft_deleted": df["deleted_at"].notna(),
    }
    for col in ("email_confirmed", "phone_confirmed"):
        low = df[col].str.lower()
        flags[f"{col}_true"] = low.isin(TRUE_TOKENS)
        flags[f"{col}_false"] = low.isin(FALSE_TOKENS)
        flags[f"{col}_null"] = df[col].isna()
    table = pd.DataFrame({name: s.fillna(False).astype(bool) for name, s in flags.items()})
    counts = table.groupby(tenant, sort=False).sum().astype(int)
    groups = norm_email.groupby(tenant).agg(lambda s: int((s.value_counts() > 1).sum()))
    counts["email_duplicate_extra"] = counts["email_duplicate_rows"] - groups.reindex(counts.index).fillna(0)
    counts.index.name = "tenant_code"
    return counts
