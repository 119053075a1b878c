"""One error tree for the whole pipeline.

Every error a user can cause is a ``MigrationError``: the CLI prints its message (never a traceback)
and exits with its ``exit_code``. Messages name the file, line, key or column and say what to do, and
never carry personal data (mask it with ``pipeline.masking`` first).
"""

from __future__ import annotations


class MigrationError(Exception):
    """Base of every error the CLI reports as a message rather than a traceback."""

    exit_code = 2
    phase = "migration"

    def __init__(self, message: str, *, tenant: str | None = None, run_id: str | None = None,
                 chunk: str | None = None, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tenant = tenant
        self.run_id = run_id
        self.chunk = chunk
        self.job_id = job_id

    def __str__(self) -> str:
        ids = [f"{k}={v}" for k, v in (("tenant", self.tenant), ("run", self.run_id),
                                       ("chunk", self.chunk), ("job", self.job_id)) if v]
        return f"{self.message} [{', '.join(ids)}]" if ids else self.message


class ConfigError(MigrationError):
    """Settings or environment are wrong. ``problems`` lists every problem found, not just the first."""

    phase = "config"

    def __init__(self, message: str, problems: list[str] | None = None, **ids: str | None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, **ids)


class MappingError(ConfigError):
    """A mapping file is invalid; ``problems`` holds one line per problem, each naming file and key."""

    phase = "mapping"


class ExtractError(MigrationError):
    """The legacy database could not be read (connection, SQL file, missing column)."""

    phase = "extract"


class ContractError(MigrationError):
    """The target pool could not be read, or it cannot accept an import (e.g. no auto-verified attribute)."""

    phase = "contract"


class ValidationGateError(MigrationError):
    """Too many rows were rejected: the configured rejection threshold stops the run before import."""

    phase = "validate"
    exit_code = 3


class LoadError(MigrationError):
    """An import job could not be run to completion."""

    phase = "load"
    exit_code = 6


class TransientLoadError(LoadError):
    """Worth retrying: throttling, 5xx, a connection reset."""


class LedgerError(MigrationError):
    """The run ledger cannot be opened or written (a damaged file, a full disk)."""

    phase = "ledger"


class RunLockedError(LoadError):
    """Another run holds the lock for this account."""

    exit_code = 4


class ReconcileError(MigrationError):
    """The accounting does not add up, or the pool disagrees with the ledger."""

    phase = "reconcile"
    exit_code = 5
