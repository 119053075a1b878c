"""pandera schema classes whose backends skip the failure-case tables this project never reads.

The validator takes the failing rows of every check from the check's boolean output
(``SchemaError.check_output``), so pandera's failure-case tables are pure overhead here, and a fixed
cost per partition whatever its size: a 1,000-row partition took ~95 ms to validate, ~60% of it in
(cProfile):

* ``SchemaErrors`` consolidating the failure cases into one long table (~24%), once per failing
  column and once for the frame;
* each column's dtype check, which for ``string[pyarrow]`` builds an element-wise result and formats
  a message with the repr of its (empty) failure table even when the column passes (~16%);
* each failing check's failure-case extraction and reshaping (~20%).

With these backends it takes ~33 ms. They are registered through pandera's ``register_backend``:
the checks, their order, ``lazy`` collection and every ``SchemaError`` (with its ``check_output``)
are pandera's own. A column of exactly the declared dtype passes at once; any other still goes
through pandera's element-wise dtype check. ``SchemaErrors.failure_cases`` lists one line per failed
check (its column, check name and number) without failing values: those, masked, are in the rejects
file. Other pandera schemas in the process are untouched (``test_validate`` holds both).
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.api.base.checks import CheckResult
from pandera.api.base.error_handler import ErrorHandler
from pandera.backends.base import CoreCheckResult
from pandera.backends.pandas.checks import PandasCheckBackend
from pandera.backends.pandas.components import ColumnBackend
from pandera.backends.pandas.container import DataFrameSchemaBackend
from pandera.engines.pandas_engine import Engine
from pandera.errors import FailureCaseMetadata, SchemaError, SchemaErrorReason
from pandera.validation_depth import ValidationScope, validate_scope

from pipeline.arrowtext import all_empty, arrow

_STRING = pd.StringDtype("pyarrow")


def _metadata(schema_name: str | None, errors: list[SchemaError]) -> FailureCaseMetadata:
    """pandera's summary of lazily collected errors, with one failure-case line per failed check."""
    handler = ErrorHandler()
    handler.collect_errors(errors)
    lines = {
        "schema_context": [type(err.schema).__name__ for err in errors],
        "column": [getattr(err.schema, "name", None) for err in errors],
        "check": [getattr(err.check, "name", None) or str(err.check) for err in errors],
        "check_number": [err.check_index for err in errors],
        "failure_case": [None] * len(errors),
        "index": [None] * len(errors),
    }
    summary = handler.summarize(schema_name=schema_name) if handler.collected_errors else {}
    return FailureCaseMetadata(
        failure_cases=pd.DataFrame(lines),
        message=_plain(summary),
        error_counts=dict(Counter(e["reason_code"].name for e in handler.collected_errors)),
    )


def _plain(value: Any) -> Any:
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value


class _CheckBackend(PandasCheckBackend):
    def postprocess(self, check_obj: Any, check_output: Any) -> CheckResult:
        """Pass/fail and the boolean output; no failure cases (``schema._check`` returns a numpy array,
        one per row in order; any other check here a bool Series)."""
        return CheckResult(check_output, bool(check_output.all()), check_obj, None)


# What a column's errors are summarised as: nothing. pandera raises a column's errors as a
# ``SchemaErrors`` twice (its array backend, then its column backend) only for the frame's backend to
# collect them again and summarise them once (``_SchemaBackend``): each of those summaries, a table
# built of Python lists, was thrown away (4.5% of the partition loop's GIL time, py-spy).
_UNREAD = FailureCaseMetadata(failure_cases=pd.DataFrame(), message={}, error_counts={})


def _declared(column: pd.Series, schema: Any) -> bool:
    """Whether the column has exactly the dtype its schema declares."""
    return schema.dtype is not None and _engine_dtype(column.dtype) == schema.dtype


@functools.lru_cache(maxsize=32)
def _engine_dtype(dtype: Any) -> Any:
    """pandera's data type for a pandas dtype: 6 us to work out, twice a column and partition; 1 us kept."""
    return Engine.dtype(dtype)


def passes_blank(column: Any) -> bool:
    """Whether a column schema has checks and every one passes an empty value (``PoolCheck.blank_passes``):
    a column left empty cannot fail it."""
    return bool(column.checks) and all(getattr(c, "blank_passes", False) for c in column.checks)


class _ColumnBackend(ColumnBackend):
    @validate_scope(scope=ValidationScope.DATA)
    def run_checks(self, check_obj: pd.DataFrame, schema: Any) -> list[CoreCheckResult]:
        """No check runs on a column that every one of its checks passes blank (``PoolCheck.blank_passes``)
        when the partition leaves it empty: a pool's unused attributes (9 of the demo pool's 24 columns,
        45 checks a partition: ~2 ms of pandera's calls for nothing, ~6% of a 46,600-row partition's
        validation, in alternating rounds)."""
        column = check_obj[schema.name]
        if (passes_blank(schema)
                and _declared(column, schema) and all_empty(column)):
            return []
        return super().run_checks(check_obj, schema)

    @validate_scope(scope=ValidationScope.SCHEMA)
    def check_nullable(self, check_obj: pd.Series, schema: Any) -> CoreCheckResult:
        """A column of the declared dtype counts its nulls in O(1) (Arrow keeps the count); pandera's
        ``hasnans`` builds and scans a mask of the column first."""
        if check_obj.dtype == _STRING and _declared(check_obj, schema) and not arrow(check_obj).null_count:
            return CoreCheckResult(passed=True, check="not_nullable")
        return super().check_nullable(check_obj, schema)

    @validate_scope(scope=ValidationScope.SCHEMA)
    def check_dtype(self, check_obj: pd.Series, schema: Any) -> CoreCheckResult:
        """A column of exactly the declared dtype passes at once; any other goes to pandera's own check."""
        if _declared(check_obj, schema):
            return CoreCheckResult(passed=True, check=f"dtype('{schema.dtype}')",
                                   reason_code=SchemaErrorReason.WRONG_DATATYPE)
        return super().check_dtype(check_obj, schema)

    def failure_cases_metadata(self, schema_name: str, schema_errors: list[SchemaError]) -> FailureCaseMetadata:
        return _UNREAD


class _SchemaBackend(DataFrameSchemaBackend):
    def failure_cases_metadata(self, schema_name: str, schema_errors: list[SchemaError]) -> FailureCaseMetadata:
        return _metadata(schema_name, schema_errors)


class PoolCheck(pa.Check):
    """A check whose failing rows are read from its boolean output; ``blank_passes``: it passes every
    empty value, so a column left empty need not run it."""

    def __init__(self, *args: Any, blank_passes: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blank_passes = blank_passes


class PoolColumn(pa.Column):
    """A header column of the pool's CSV."""


class PoolSchema(pa.DataFrameSchema):
    """The pool's rules for one partition."""


for _type in (pd.Series, pd.DataFrame):
    PoolCheck.register_backend(_type, _CheckBackend)
PoolColumn.register_backend(pd.DataFrame, _ColumnBackend)
PoolSchema.register_backend(pd.DataFrame, _SchemaBackend)
