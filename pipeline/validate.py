"""Validate stage: the pool contract compiled into a pandera schema; lazy validation per partition;
whole-tenant duplicates resolved after the last partition.

    validator = TenantValidator(contract, {"keep": "first", "order_by": None})
    for frame in mapped_partitions:
        part = validator.validate(frame)      # part.valid (header columns, clean), part.rejects
        ...stage part.valid, write part.rejects...
    drop = validator.duplicate_rejects()      # REJECT_COLUMNS; remove these legacy ids from the staged rows

The pieces live in ``pipeline.validation``: ``rules`` (vectorised predicates), ``schema``
(``build_schema``, ``prepare_frame``), ``tenant`` (``TenantValidator``) and ``duplicates``.
"""

from __future__ import annotations

from pipeline.validation.duplicates import DuplicatesPolicy, UniqueKey, unique_keys
from pipeline.validation.rules import decodable, no_control_characters
from pipeline.validation.schema import build_schema, prepare_frame
from pipeline.validation.tenant import TenantValidator, ValidatedPartition, empty_rejects

__all__ = [
    "DuplicatesPolicy",
    "TenantValidator",
    "UniqueKey",
    "ValidatedPartition",
    "build_schema",
    "decodable",
    "empty_rejects",
    "no_control_characters",
    "prepare_frame",
    "unique_keys",
]
