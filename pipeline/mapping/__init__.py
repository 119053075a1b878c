"""Mapping stage: ``mappings/*.yaml`` -> a checked ``TenantMapping``; a partition -> ``MappedPartition``.

``load_mapping`` checks everything it can without data and reports every problem at once;
``check_source_columns`` and ``check_header`` add the checks that need the query's columns and the
pool's CSV header; ``apply_mapping`` maps one partition. The YAML format: mappings/README.md.
"""

from pipeline.mapping.apply import MappedPartition, apply_mapping
from pipeline.mapping.spec import (
    AttributeRule,
    DuplicatesPolicy,
    RowPolicy,
    Step,
    TenantMapping,
    UsernameRule,
    check_header,
    check_source_columns,
    list_tenants,
    load_mapping,
)

__all__ = [
    "AttributeRule", "DuplicatesPolicy", "MappedPartition", "RowPolicy", "Step", "TenantMapping",
    "UsernameRule", "apply_mapping", "check_header", "check_source_columns", "list_tenants", "load_mapping",
]
