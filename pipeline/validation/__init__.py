"""Validation internals: vectorised rules, the pandera schema, per-tenant validation and duplicates.

The public entry point is ``pipeline.validate``.
"""
