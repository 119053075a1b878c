"""The command line: the only place that prints and chooses exit codes.

Exit codes: 0 done; 2 a user mistake (config, mapping, source, pool); 3 the rejection gate stopped the
run (or failed, for ``report``); 4 another run holds the lock; 5 the accounting does not add up; 6 a job
or the load failed; 130 Ctrl-C, 143 SIGTERM (both stop the same clean way).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import signal
import sqlite3
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from pipeline.errors import LoadError, MigrationError, ReconcileError, ValidationGateError
from pipeline.settings import DEFAULT_LOCAL_PORT, Settings, is_loopback_url, load_settings, shown_url

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Move legacy users into Amazon Cognito user pools through CSV import jobs.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

TenantOpt = Annotated[list[str] | None, typer.Option(
    "--tenant", "-t", help="Tenant(s) to run: repeatable or comma-separated; default: all")]


class _Bars:
    """Rich progress bars fed by the runner's Progress protocol (rows per tenant and stage)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def rows(self, tenant: str, stage: str, n: int) -> None:
        key = (tenant, stage)
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(f"{tenant}: {stage}", total=None)
        self._progress.advance(self._tasks[key], n)

    def note(self, tenant: str, message: str) -> None:
        """Plain messages; the load stage's are shown through ``event`` instead."""

    def event(self, kind: str, tenant: str, message: str, **info: object) -> None:
        """Load-stage events: a bar per import job's status, a line for anything else."""
        if kind == "job_status":
            key = (tenant, f"{info.get('chunk')} {info.get('job_id')}")
            rows, done = info.get("rows"), info.get("done")
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task("", total=rows if isinstance(rows, int) else None)
            self._progress.update(self._tasks[key], completed=done if isinstance(done, int) else 0,
                                  description=f"{tenant}: {info.get('chunk')} job {info.get('status')}")
        elif kind != "chunk_harvested" or not self._progress.disable:
            self._progress.console.print(f"{tenant}: {message}", markup=False, highlight=False)


@contextmanager
def _progress():
    columns = [TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as progress:
        yield _Bars(progress)


def _tenants(settings: Settings, chosen: list[str] | None) -> list[str]:
    from pipeline.mapping import list_tenants
    from pipeline.mapping.spec import unread_tenant_files

    unread = unread_tenant_files(settings.mappings_dir)
    if unread:
        raise MigrationError("Tenant files must end in .yaml, so these would not be read (their users left out): "
                             + "; ".join(f"{p}: rename it {p.stem}.yaml" for p in unread))
    known = list_tenants(settings.mappings_dir)
    if chosen is not None:    # --tenant a,b (make migrate TENANT=a,b) as well as --tenant a --tenant b
        named = [name for option in chosen for name in option.replace(",", " ").split()]
        if not named:
            raise MigrationError(f"--tenant names no tenant: write one or more of {', '.join(known)}, "
                                 "separated by commas (TENANT=a,b), or leave it out for all of them.")
        chosen = list(dict.fromkeys(named))
    if not chosen:
        if not known:
            raise MigrationError(f"No tenant files in {settings.mappings_dir / 'tenants'}: add one per tenant "
                                 "(see mappings/README.md).")
        return known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        from pipeline.mapping.model import suggest

        guesses = "".join(suggest(t, known) for t in unknown[:1])   # "; did you mean 'acme-jp'?"
        raise MigrationError(f"Unknown tenant(s) {', '.join(unknown)}: expected one of {', '.join(known)} "
                             f"(files in {settings.mappings_dir / 'tenants'}){guesses or '.'}")
    return chosen


def _prepare_source(settings: Settings) -> None:
    """With nothing configured, the source is the embedded demo database: build it on first use."""
    if settings.source_url == f"sqlite:///{settings.demo_db}" and not settings.demo_db.exists():
        from pipeline.demo import create_sqlite_demo

        err.print(f"Building the embedded demo database at {settings.demo_db}", markup=False)
        create_sqlite_demo(settings.demo_db)


def _loudly(banner: str, refusal: str | None) -> None:
    """A target beyond this machine: ``banner`` between two red rules, then ``refusal`` (raised) unless the
    user gave --yes."""
    err.print("[bold red]" + "!" * 72)
    err.print(f"[bold red]  {banner}")
    err.print("[bold red]" + "!" * 72)
    if refusal:
        raise MigrationError(refusal)


def _target(settings: Settings, tenants: list[str], yes: bool, writes: bool = True):
    from pipeline import localservice
    from pipeline.cognito import CognitoTarget
    from pipeline.plan import check_aws_pools, check_local_pools

    if settings.target.is_aws:
        check_aws_pools(settings, tenants)
        _loudly(f"REAL AWS: region {settings.target.region}. " + (
            "Import jobs will create users in real pools." if writes
            else "Only GetCSVHeader and DescribeUserPool are read."),
            None if yes else "Refusing to write to real AWS without --yes (or ARGS=--yes with make).")
        return CognitoTarget.from_settings(settings.target)
    check_local_pools(settings, tenants)
    endpoint = settings.target.endpoint_url or localservice.ensure_running(
        settings.runs_dir.parent / "var", port=settings.target.local_port)
    if not is_loopback_url(endpoint):
        # a service on another machine gets the import files (every user's email, phone and name) as AWS would
        _loudly(f"NOT THIS MACHINE: COGNITO_ENDPOINT_URL={escape(shown_url(endpoint))}. " + (
            "Import files (users' emails, phones, names) will be sent there." if writes
            else "Pools are looked up (or created) there."),
            None if yes else "Refusing to send users to a service on another host without --yes (or ARGS=--yes "
                             "with make); for the service on this machine use http://127.0.0.1:<port>.")
    err.print(f"Target: local Cognito import service at {shown_url(endpoint)}", markup=False)
    aws_only = [name for name in ("COGNITO_USER_POOL_ID", "COGNITO_LOGS_ROLE_ARN") if os.environ.get(name, "").strip()]
    if aws_only:   # set for AWS, with COGNITO_TARGET forgotten or misspelt: this run does not go there
        err.print(f"[yellow]note: {' and '.join(aws_only)} {'is' if len(aws_only) == 1 else 'are'} set but not used: "
                  "this run goes to the local service, not to AWS; COGNITO_TARGET=aws selects AWS.")
    other = None if settings.target.endpoint_url else localservice.other_checkout(endpoint)
    if other:
        err.print(f"[yellow]note: that service was started from another checkout ({escape(other)}) and runs its "
                  f"code; run `make stop-cognito` there, or set LOCAL_COGNITO_PORT to use a service of this one.")
    return CognitoTarget.from_settings(settings.target, endpoint_url=endpoint)


@app.command()
def report(tenant: TenantOpt = None,
           contract_snapshot: Annotated[Path | None, typer.Option(
               help="Plan offline against a saved pool snapshot (see save-contract)")] = None) -> None:
    """Data-quality report and would-be import files per tenant; touches no import job."""
    from pipeline.plan import plan_tenant
    from pipeline.report import render_terminal

    settings = load_settings()
    tenants = _tenants(settings, tenant)
    if contract_snapshot is not None and len(tenants) != 1:
        raise MigrationError("A contract snapshot describes one tenant's pool: add --tenant <name> "
                             "(the tenant whose pool save-contract read).")
    _prepare_source(settings)
    target = None if contract_snapshot else _target(settings, tenants, yes=True, writes=False)
    stopped: list[str] = []
    with _progress() as bars:
        for name in tenants:
            plan = plan_tenant(settings, name, target=target, contract_snapshot=contract_snapshot, progress=bars,
                               purpose="report")
            out.print(render_terminal(plan.report), markup=False)
            if plan.pruned_runs:
                out.print(_pruned(plan), markup=False)
            _warn_contract_change(plan.report)
            out.print(f"report: {plan.report_paths.get('html')}  (json: {plan.report_paths.get('json')})\n",
                      markup=False)
            if not plan.gate_passed:
                stopped.append(name)
    if stopped:   # a script (CI) running the report before a migrate learns it from the exit code
        raise ValidationGateError(
            f"the rejection gate failed for {', '.join(stopped)}: a migrate would stop before importing "
            f"{'it' if len(stopped) == 1 else 'them'}. Read the report, then fix the data or the mapping, or "
            "raise report.reject_threshold in the tenant's mapping file.")


@app.command("save-contract")
def save_contract(tenant: Annotated[str, typer.Option("--tenant", "-t")],
                  path: Annotated[Path, typer.Option("--out", help="Where to write the snapshot JSON")]) -> None:
    """Save the tenant pool's GetCSVHeader + DescribeUserPool for offline planning."""
    from pipeline.mapping import load_mapping
    from pipeline.plan import read_contract, resolve_pool

    settings = load_settings()
    _tenants(settings, [tenant])
    target = _target(settings, [tenant], yes=True, writes=False)
    pool_id = resolve_pool(target, load_mapping(settings.mappings_dir, tenant), settings)
    read_contract(target, pool_id).to_snapshot(path)
    out.print(f"saved the contract of pool {pool_id} to {path}", markup=False)


@app.command()
def migrate(tenant: TenantOpt = None,
            dry_run: Annotated[bool, typer.Option(
                help="Stop after the files and the plan (and the retry files, with --retry-failed)")] = False,
            keep_files: Annotated[bool, typer.Option(help="Keep chunk CSVs after their job is harvested")] = False,
            on_failed_job: Annotated[str, typer.Option(help="stop | continue")] = "stop",
            retry_failed: Annotated[bool, typer.Option(
                help="Import again the users Cognito failed in earlier jobs (after fixing the cause)")] = False,
            recheck_pool: Annotated[bool, typer.Option(
                help="Look up again the users earlier runs confirmed in the pool, and note those changed or "
                     "deleted there since (on AWS a listing of the whole pool: ~15 minutes per million users at "
                     "the default COGNITO_LIST_USERS_RPS of 20)")] = False,
            accept_missing: Annotated[bool, typer.Option(
                help="Accept that imported users the final check does not find in the pool were deleted there "
                     "on purpose: noted and settled, not failed on every run")] = False,
            yes: Annotated[bool, typer.Option("--yes", help="Confirm a run against real AWS")] = False) -> None:
    """Plan, import and reconcile every tenant (or --tenant); the local Cognito service by default."""
    from pipeline.ledger import Ledger
    from pipeline.load import LoadPolicy
    from pipeline.runner import MigrateResult, start_tenant

    if on_failed_job not in ("stop", "continue"):
        raise MigrationError(f"--on-failed-job {on_failed_job!r}: write 'stop' or 'continue'.")
    final_check_options = [name for name, given in (("--recheck-pool", recheck_pool),
                                                    ("--accept-missing", accept_missing)) if given]
    if dry_run and final_check_options:   # they steer the final check, which a dry run does not reach
        raise MigrationError(f"{' and '.join(final_check_options)} steer the final check against the pool, which "
                             "a dry run does not reach: drop --dry-run to run them, or drop them to preview.")
    settings = load_settings()
    tenants = _tenants(settings, tenant)
    _prepare_source(settings)
    target = _target(settings, tenants, yes=yes or dry_run, writes=not dry_run)   # a dry run reads what report reads
    # AWS jobs take minutes, so polling every 1-15 s costs nothing; the local service finishes a
    # chunk in seconds, where the same polling would be most of the gap between two jobs.
    policy = LoadPolicy(on_failed_job=on_failed_job, keep_files=keep_files)
    if not settings.target.is_aws:
        policy = replace(policy, poll_initial_seconds=0.1, poll_max_seconds=1.0, active_wait_seconds=1.0)
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    failed_accounting: list[str] = []
    stopped: list[str] = []
    gated: list[str] = []
    # A paced final check (COGNITO_LIST_USERS_RPS, 20 pages a second on AWS: minutes per tenant) mostly
    # waits, so it runs on a thread of its own while the next tenant plans and loads; results are printed
    # in tenant order, each when the next one has loaded. An unpaced one (the local service) runs at once:
    # it would take the CPU and the service's lock from the next tenant's jobs (2 tenants of 300,000 rows:
    # 208 s overlapped against 113 s one after the other).
    overlap = settings.target.list_users_pages_per_second > 0
    checking: list[tuple[str, Future[MigrateResult]]] = []

    def settle() -> None:
        """Wait for the tenant whose check runs in the background; print its result (or raise its error)."""
        while checking:
            name, future = checking.pop()
            try:
                result = future.result()
            except MigrationError as exc:   # named: printed beside another tenant's, it said not whose it was
                exc.tenant = exc.tenant or name
                raise
            _print_result(result)
            if result.stop_reason:
                stopped.append(name)
            # a stopped load leaves users without an outcome; anything more fails the accounting (5) all the same
            acc = result.accounting
            if acc is not None and not acc.ok and (not result.stop_reason or acc.fails_beyond_the_load):
                failed_accounting.append(name)

    checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="final-check")
    interrupted = False
    earlier: MigrationError | None = None     # an earlier tenant's check failed while this tenant's error stops
    with Ledger.open(settings.runs_dir / "ledger.sqlite", lock_key=target.account_key) as ledger, \
            _progress() as bars:
        try:
            for name in tenants:
                try:
                    finish = start_tenant(settings, name, target=target, ledger=ledger, policy=policy,
                                          dry_run=dry_run, retry_failed=retry_failed, recheck_pool=recheck_pool,
                                          accept_missing=accept_missing, progress=bars)
                except ValidationGateError as exc:   # this tenant imports nothing; the batch's others go on
                    if len(tenants) == 1:
                        raise
                    settle()
                    err.print(f"error ({exc.phase}): {exc}", markup=False, style="bold red")
                    gated.append(name)
                    continue
                settle()
                checking.append((name, checker.submit(finish)))
                if not overlap:
                    settle()
            settle()
        except KeyboardInterrupt:
            interrupted = True      # the CLI exits at once; the ledger holds what each check committed
            raise
        except BaseException as exc:
            try:                    # this tenant's error: the previous tenant's result is printed first
                settle()
            except MigrationError as previous:
                err.print(f"error ({previous.phase}): {previous}", markup=False, style="bold red")
                earlier = previous
            except KeyboardInterrupt:
                interrupted = True  # Ctrl-C during that wait: exit at once, as from the loop
                raise
            # an earlier tenant's accounting, load or final check failed: that stays the exit code (5, 6), not
            # this tenant's mistake (2), which is printed
            mistake = isinstance(exc, MigrationError) and exc.exit_code == MigrationError.exit_code
            check_failed = earlier is not None and earlier.exit_code != MigrationError.exit_code
            if isinstance(exc, MigrationError) and (failed_accounting or stopped or (mistake and check_failed)):
                err.print(f"error ({exc.phase}): {exc}", markup=False, style="bold red")
                _batch_failures(failed_accounting, stopped, [])
                assert earlier is not None
                raise _failed_before(earlier) from None
            raise
        finally:
            checker.shutdown(wait=not interrupted, cancel_futures=True)
    _batch_failures(failed_accounting, stopped, gated)


def _failed_before(earlier: MigrationError) -> MigrationError:
    """The exit of a batch that a tenant's error stopped after an earlier tenant's final check had failed
    (both printed): the earlier failure's phase and exit code."""
    summary = MigrationError(f"The final check of {earlier.tenant} failed; see the reason above.")
    summary.phase, summary.exit_code = earlier.phase, earlier.exit_code
    return summary


def _batch_failures(failed_accounting: list[str], stopped: list[str], gated: list[str]) -> None:
    """Raise the batch's most serious failure among its tenants: the accounting (5), then a stopped load
    (6), then the rejection gate (3)."""
    if failed_accounting:
        raise ReconcileError(f"The accounting does not add up for {', '.join(failed_accounting)}; see the "
                             "run reports above.")
    if stopped:
        raise LoadError(f"The load stopped early for {', '.join(stopped)}; see the reasons above.")
    if gated:
        raise ValidationGateError(f"The rejection gate stopped {', '.join(gated)} before any import (the other "
                                  "tenants ran); see the reasons above.")


def _warn_contract_change(report: dict) -> None:
    previous = report.get("previous_contract")
    if previous:
        out.print(f"  NOTE: the pool's contract changed since run {previous['run_id']} "
                  f"({str(previous['fingerprint'])[:16]}... -> {str(report['contract_fingerprint'])[:16]}...): "
                  "compare the two contract.json files before importing.", markup=False)


def _pruned(plan) -> str:
    return (f"removed the would-be import files (PII) of {plan.pruned_runs} earlier report or dry run(s) of "
            f"{plan.tenant}; their reports stay")


def _print_result(result) -> None:
    plan = result.plan
    _warn_contract_change(plan.report)
    out.print(f"[bold]{escape(plan.tenant)}[/]  pool {escape(plan.pool_id)}")
    for note in plan.report["notes"]:
        out.print(f"  NOTE: {note}", markup=False)
    if plan.pruned_runs:
        out.print(f"  {_pruned(plan)}", markup=False)
    if result.pruned_loads:
        out.print(f"  removed the import files (PII) that {result.pruned_loads} earlier interrupted or dry migrate "
                  f"run(s) of {plan.tenant} left behind; no job needs them any more", markup=False)
    acc = result.accounting
    if acc is None:
        out.print(f"  dry run: {plan.source_rows} source rows, {len(plan.rejected_ids)} rejected, "
                  f"{sum(c.rows for c in plan.chunks)} in {len(plan.chunks)} import file(s); nothing imported")
        # users earlier jobs failed in files already imported: a migrate sends them only in retry files
        held = sum(c.rows for c in plan.chunks) - result.already_in_pool - result.would_send
        if result.already_in_pool or held > 0:
            out.print(f"  {result.already_in_pool} of those users were imported or met in the pool by earlier "
                      f"runs; a migrate would send {'the other ' if held <= 0 else ''}{result.would_send}."
                      + (f" {held} that failed in earlier jobs of files already imported stay failed: "
                         "--retry-failed imports them again once the cause is fixed." if held > 0 else ""))
    else:
        only_stopped = result.stop_reason and not acc.fails_beyond_the_load
        if acc.ok:
            mark = "[green]OK[/]"
        elif only_stopped:
            mark = f"[yellow]{acc.missing} not imported yet (the load stopped)[/]"
        else:
            mark = "[red]DOES NOT ADD UP[/]"
        out.print(f"  source {acc.source_rows} = imported {acc.imported} + skipped {acc.skipped} + "
                  f"rejected {acc.rejected} + failed {acc.failed}   {mark}")
        if not acc.ok and not only_stopped:
            for problem in acc.problems:
                out.print(f"  - {problem}", markup=False)
        for note in acc.notes:
            out.print(f"  NOTE: {note}", markup=False)
        if result.stop_reason:
            out.print(f"  the load stopped: {result.stop_reason}", markup=False)
            out.print("  fix the cause, then rerun the same command: done chunks are not imported again")
        if acc.failed and not result.stop_reason:
            out.print(f"  {acc.failed} user(s) failed in Cognito (reasons in the report and outcomes.csv); once the "
                      "cause is fixed, rerun with --retry-failed (make migrate ARGS=--retry-failed)", markup=False)
        if result.sub_mapping:
            out.print(f"  legacy id -> sub: {result.sub_mapping}", markup=False)
    out.print(f"  report: {result.report_paths.get('html')}  (json: {result.report_paths.get('json')})",
              markup=False)
    if result.timings:
        out.print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))


@app.command("serve-cognito")
def serve_cognito(host: str = "127.0.0.1", port: int = DEFAULT_LOCAL_PORT) -> None:
    """Run the local Cognito import service in the foreground."""
    from pipeline.localcognito import serve

    serve(host, port)


@app.command("stop-cognito")
def stop_cognito() -> None:
    """Stop the local Cognito service that `make migrate` started in the background."""
    from pipeline import localservice

    settings = load_settings()
    stopped = localservice.stop(settings.runs_dir.parent / "var", port=settings.target.local_port)
    out.print(f"stopped the local Cognito service (pid {', '.join(map(str, stopped))})" if stopped
              else f"no local Cognito service of this checkout is running (port {settings.target.local_port})")


@app.command()
def demo(rows_per_tenant: int = 400) -> None:
    """(Re)build the embedded demo legacy database."""
    from pipeline.demo import create_sqlite_demo

    settings = load_settings()
    settings.demo_db.unlink(missing_ok=True)
    create_sqlite_demo(settings.demo_db, n_per_tenant=rows_per_tenant)
    out.print(f"demo database: {settings.demo_db}", markup=False)


def _no_blas_threads() -> None:
    """Let numpy's OpenBLAS start no threads of its own: on import it starts one per core, which spun
    ~0.1 s of CPU beside the imports (``perf``, 1M-row plan), and nothing here does linear algebra. Read
    when numpy is first imported (by pyarrow's import, next); a value the user set is kept."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _arrow_memory_pool(decay_ms: int = 300) -> None:
    """Use Arrow's jemalloc pool: at 1M rows the plan's peak memory was ~80 MB lower than with the
    default (mimalloc) pool at the same speed, because jemalloc returns freed partition memory.

    jemalloc hands freed pages back to the system ``decay_ms`` after they were freed. With Arrow's
    default (1 s) a plan holds several partitions' worth of freed pages: extracting 1M rows alone, the
    process grew by ~50 MB while Arrow's live memory stayed at ~17 MB. Measured at 1M rows, three
    alternating rounds each: peak RSS 391 MiB with the default, 377 with 100 ms, 371 with 0 ms, which
    cost ~0.4 s more (the kernel zeroes every page again). A partition takes ~0.12 s, so at 100 ms the
    pages one partition freed were returned just before the next one faulted them in again: at 300 ms,
    ~60,000 fewer page faults and ~0.25 s less system time at 1M rows, 2-6 MiB more peak (360-361
    against 362-367 MiB), and the plan 3-6% quicker against the copy in three alternating runs of 6-8
    rounds; at 1 s the peak reached 373-385 MiB.

    The pool is also named in ``ARROW_DEFAULT_MEMORY_POOL`` before pyarrow is first imported: set only
    afterwards, the mimalloc pool that pyarrow's import set up stays mapped, ~9 MB more peak RSS at 1M
    rows (381-383 against 391-392 MiB over three alternating rounds).

    The decay does not return pages straight away: it first marks them with ``MADV_FREE`` ("muzzy"),
    and the kernel keeps such pages in the process's RSS until memory runs short; Arrow's build
    returns muzzy pages for good only after another second. ``muzzy_decay_ms:0`` returns them at the
    end of the decay.

    Both decays are given in ``JE_ARROW_MALLOC_CONF``, which jemalloc reads when it starts, so that
    every arena has them (a value the user set is kept, whole). ``pa.jemalloc_set_decay_ms``, used
    before, sets both decays of the arenas created after the call only: arena 0, made when jemalloc
    starts, kept Arrow's 1 s dirty decay, and each later arena (one per allocating thread: mapping,
    encoding, the COPY reader) got 100 ms for its muzzy pages as well. jemalloc's statistics right
    after a 1M plan's loop showed arena 0 holding ~10,000 freed pages (~40 MB). Six alternating 1M
    rounds: median peak 326 against 341 MiB (323-329 against 331-348), wall 4.20 against 4.23 s,
    CPU 5.62 against 5.59 s.
    """
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")   # read when pyarrow is first imported
    # read when jemalloc starts
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", f"dirty_decay_ms:{decay_ms},muzzy_decay_ms:0")
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowException):   # a pyarrow build without jemalloc
        pass


_M_TRIM_THRESHOLD = -1   # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3


def _malloc_thresholds(mmap_size: int = 1 << 20, trim_size: int = 4 << 20) -> None:
    """Serve blocks of ``mmap_size`` and more with their own mmap, returned to the system when freed,
    and keep up to ``trim_size`` of free memory at the top of the heap rather than returning it.

    glibc otherwise raises the mmap threshold to the largest block freed so far (up to 32 MB), after
    which a partition's multi-MB numpy and buffer copies come from a heap that keeps them: at 1M rows
    the plan's peak RSS then varied between ~380 and ~410 MB from run to run. A fixed threshold keeps
    it steady, but a low one costs page faults: every block above it is a fresh mapping the kernel
    zeroes page by page, and setting the threshold also fixes the trim threshold at 128 KB, so the
    heap is returned and faulted back in all the time. Measured in alternating rounds (wall, peak RSS,
    page faults), 1M rows: 256 KB with the 128 KB trim 6.39 s, 374 MiB, 612k; 1 MB with a 4 MB trim
    6.19 s, 378 MiB, 353k; 1 MB with a 64 MB trim the same speed and 381 MiB; 1 MB with the 128 KB
    trim 6.28 s, 389k faults; glibc's own dynamic thresholds 385 MiB; 2 MB 414 MiB. 250k rows: 256 KB
    2.48 s, 339 MiB; 1 MB with a 4 MB trim 2.32 s, 343 MiB; with a 64 MB trim 350 MiB. Other C
    libraries are left alone.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_size)
        libc.mallopt(_M_TRIM_THRESHOLD, trim_size)
    except (OSError, AttributeError):
        pass


def _fewer_gc_passes(first_generation: int = 10_000) -> None:
    """Run the cyclic garbage collector's young pass every ``first_generation`` allocations, not 700.

    The plan makes and drops hundreds of thousands of short-lived pandas and Arrow wrapper objects,
    almost none in reference cycles (the data itself lives in Arrow buffers freed by reference
    counting): at 1M rows the collector ran ~360 times for 0.25 s, with this ~80 times for 0.11-0.13 s.
    """
    gc.set_threshold(first_generation, *gc.get_threshold()[1:])


def main() -> None:
    """Run the CLI: usage mistakes are click's messages (exit 2), ours are one line each, no traceback.
    Every way out that the CLI handles goes through ``_leave``."""
    _malloc_thresholds()
    _no_blas_threads()
    _arrow_memory_pool()
    _fewer_gc_passes()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit as exc:     # how click ends every command, successful or not
        stop = _interrupted(exc)   # typer turns Ctrl-C into exit code 130 without a word
        if stop:
            err.print(_stopped(stop))
        _leave(143 if isinstance(stop, Terminated) else exc.code)
    except MigrationError as exc:
        err.print(f"error ({exc.phase}): {exc}", markup=False, style="bold red")
        _leave(exc.exit_code)
    except OSError as exc:        # no such directory, no permission, disk full, port taken
        err.print(f"error (system): {_os_problem(exc)}", markup=False, style="bold red")
        _leave(2)
    except sqlite3.Error as exc:  # the run ledger, mid-run (the source database's errors are ExtractErrors)
        err.print(f"error (ledger): {_ledger_problem(exc)}", markup=False, style="bold red")
        _leave(2)
    except KeyboardInterrupt as exc:
        err.print(_stopped(exc))
        _leave(143 if isinstance(exc, Terminated) else 130)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler or CI stopping the job): the run stops as on Ctrl-C, through the same
    clean-up (the plan's staged rows removed, the harvests under way stored, the ledger told), not killed
    outright like ``kill -9``."""


def _terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated()


def _stopped(exc: KeyboardInterrupt) -> str:
    return (f"{'terminated (SIGTERM)' if isinstance(exc, Terminated) else 'interrupted'}; "
            "rerun the same command (a migrate continues where it stopped)")


def _runs_dir_setting() -> str:
    """The runs directory setting as a message names it."""
    return f"MIGRATE_RUNS_DIR ({os.environ.get('MIGRATE_RUNS_DIR') or 'runs/ by default'})"


def _ledger_problem(exc: sqlite3.Error) -> str:
    """What the run ledger refused mid-run, and what to do: another process holding it (SQLITE_BUSY,
    SQLITE_LOCKED: a sqlite3 shell or a viewer with a write open, after a 30 s wait) is not a full disk."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (5, 6):
        return (f"the run ledger could not be written ({exc}): another process holds ledger.sqlite in "
                f"{_runs_dir_setting()} (a sqlite3 shell, a backup or a viewer with it open for writing). "
                "Close that, then rerun the same command: what the ledger committed before stands.")
    return (f"the run ledger could not be written ({exc}). Check that the disk of {_runs_dir_setting()} has room, "
            "then rerun the same command: what the ledger committed before stands.")


def _interrupted(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (Ctrl-C, or SIGTERM's ``Terminated``) in ``exc``'s chain of causes and
    contexts, if any."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def _os_problem(exc: OSError) -> str:
    """What the system refused and what to check (no traceback: a full disk is not a bug of ours)."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "[errno 28]" in str(exc):   # Arrow's writers name no errno
        return (f"No space left on device{': ' + where if where else ''}. Free space on the disk of "
                f"{_runs_dir_setting()}, then rerun the same command (a migrate resumes where it stopped).")
    if where:
        return (f"{exc.strerror or exc}: {where}. Check that {_runs_dir_setting()} and the files named are writable "
                "and the disk has room, then rerun the same command (a migrate resumes where it stopped).")
    if exc.errno == errno.EADDRINUSE:
        return (f"{exc.strerror}: another process holds that port. Choose another one (PORT=... or --port) "
                "or stop that process (make stop-cognito for the one make migrate started).")
    return f"{exc.strerror or exc}. Rerun the same command (a migrate resumes where it stopped)."


def _leave(code: int | str | None) -> NoReturn:
    """Exit with ``code`` (``sys.exit``'s meaning) without the interpreter's teardown.

    By then every file and connection of the run is closed by its ``with`` block, and no atexit
    handler of ours is left. The teardown frees pandas', Arrow's and pandera's modules and objects
    one by one: 0.27-0.33 s after a 1M-row plan (~5% of it), ~0.03 s this way. The standard streams
    are flushed first. An error the CLI does not handle still ends the normal way, with its traceback.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe: nothing more can reach it
            pass
    os._exit(0 if code is None else int(code))
