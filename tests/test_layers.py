"""The package's layering (docs/architecture.md): each outside system has one adapter, and the stages
never reach up to what composes them. Read from every module's imports, lazy ones included."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"


def _parse(path: Path) -> ast.AST:
    """``ast.parse`` of the file, tried again on CPython 3.11's "AST constructor recursion depth mismatch":
    the counter it checks is shared by every thread, and 3.11's traceback module parses source lines to
    place its carets, so a traceback formatted meanwhile by a thread an earlier test left (the local
    service logging a request's error) fails this parse now and then (python/cpython#106905)."""
    for attempt in range(5):
        try:
            return ast.parse(path.read_text(), filename=str(path))
        except SystemError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _imports() -> dict[str, set[str]]:
    """Module path (relative to the package's parent, '/' separated) -> every module it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(PIPELINE.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)      # and "from pipeline import plan" as pipeline.plan:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[path.relative_to(PIPELINE.parent).as_posix()] = names
    return found


def _importers(prefixes: tuple[str, ...]) -> set[str]:
    return {module for module, names in _imports().items()
            if any(n == p or n.startswith(p + ".") for n in names for p in prefixes)}


def test_the_source_database_is_reached_through_its_adapter_only() -> None:
    assert _importers(("sqlalchemy", "psycopg2", "pymysql", "MySQLdb")) == {"pipeline/db.py"}


def test_aws_is_reached_through_the_cognito_adapter_and_the_local_service_only() -> None:
    outside = {m for m in _importers(("boto3", "botocore")) if not m.startswith("pipeline/localcognito/")}
    assert outside == {"pipeline/cognito.py"}
    moto = _importers(("moto",))
    assert moto and all(m.startswith("pipeline/localcognito/") for m in moto)


def test_pandera_is_the_validation_stage_s_own() -> None:
    pandera = _importers(("pandera",))
    assert pandera and all(m.startswith("pipeline/validation/") for m in pandera)


def test_stages_do_not_import_what_composes_them() -> None:
    """The CLI drives the runner, the runner the plan and the load; none of them is imported back."""
    assert _importers(("pipeline.cli",)) == {"pipeline/__main__.py"}
    assert _importers(("pipeline.runner",)) <= {"pipeline/cli.py"}
    assert _importers(("pipeline.plan",)) <= {"pipeline/cli.py", "pipeline/runner.py"}


def test_a_plan_from_a_saved_contract_loads_neither_boto3_nor_the_load_stage() -> None:
    """``make report --contract-snapshot`` pays for no AWS SDK import (~0.3 s of start-up)."""
    code = ("import sys, pipeline.plan, pipeline.report; "
            "print(sorted(m for m in ('boto3', 'botocore', 'pipeline.load', 'pipeline.harvest') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
