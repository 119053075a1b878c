"""Read mapping YAML with line numbers, refuse duplicate keys, deep-merge a tenant over the default.

Why a custom loader: PyYAML's safe loader keeps the *last* of two equal keys without a word, which
would let ``email:`` given twice silently drop a rule. Ours records each key's line so every problem
can point at it, and reports duplicates instead of hiding them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Paths (tuples of keys; "*" matches any key) whose value a tenant file replaces as a whole instead of
# merging into: a rule or a username strategy is one decision, so half of the default's keys must not
# leak into an override (``email: {template: ...}`` must not keep the default's ``from:``).
ATOMIC_PATHS: tuple[tuple[str, ...], ...] = (("attributes", "*"), ("username",), ("pool", "local"))

Path_ = tuple[str | int, ...]


@dataclass
class Origins:
    """Where each key path of the merged mapping was written: file label and 1-based line."""

    where: dict[Path_, tuple[str, int]] = field(default_factory=dict)

    def locate(self, path: Path_, fallback: str) -> tuple[str, int | None]:
        """The file and line of ``path`` or, for a missing key or a list item, of its nearest parent."""
        for cut in range(len(path), 0, -1):
            hit = self.where.get(tuple(path[:cut]))
            if hit is not None:
                return hit[0], hit[1] or None
        return fallback, None


class _Loader(yaml.SafeLoader):
    """SafeLoader that records key lines and collects duplicate keys and numbers that do not read as
    written (filled in per load)."""

    label = ""
    duplicates: list[tuple[int, str, int]]
    renumbered: list[tuple[yaml.Mark, str, int]]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: _LinedDict = _LinedDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark) from None
        line = key_node.start_mark.line + 1
        if key in out.lines:
            loader.duplicates.append((line, str(key), out.lines[key]))
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


class _LinedDict(dict[Any, Any]):
    """A dict that remembers the line of each of its keys."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.1 reads a plain number with a leading zero as octal and one with colons as base 60: a tenant
# code written as constant: 0042 was imported as "34", and 12:30 is 750. Nobody means either in a mapping.
_OCTAL_OR_SEXAGESIMAL = re.compile(r"[-+]?(0[0-7_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)")


class WrittenInt(int):
    """An integer of the file with the text it was written as (``+81``, ``1_000``, ``0x1F``)."""

    written = ""


class WrittenFloat(float):
    """A float of the file with the text it was written as (``1.50``, ``.inf``)."""

    written = ""


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    if _OCTAL_OR_SEXAGESIMAL.fullmatch(node.value):
        loader.renumbered.append((node.start_mark, node.value, value))
        return value                       # refused already: not reported again as text
    written = WrittenInt(value)
    written.written = node.value
    return written


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    written = WrittenFloat(value)
    written.written = node.value
    return written


def reads_otherwise(value: Any) -> str | None:
    """How a number that is used as text was written, when that is not how it reads: YAML reads
    ``+81`` as 81, ``1.50`` as 1.5, ``1_000`` as 1000 and ``0x1F`` as 31. None for anything else."""
    written = getattr(value, "written", "") if isinstance(value, int | float) else ""
    return written if written and written != str(value) else None


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


@dataclass
class LoadedFile:
    label: str                      # how messages name the file, e.g. "mappings/tenants/acme-jp.yaml"
    data: Any = None
    problems: list[str] = field(default_factory=list)
    fatal: bool = False             # unreadable or bad syntax: nothing further can be checked


def load_file(path: Path, label: str) -> LoadedFile:
    """Parse one YAML file; syntax errors and duplicate keys become problems, never exceptions."""
    loaded = LoadedFile(label)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        loaded.problems.append(f"{label}: cannot read the file ({exc.strerror}); "
                               f"check it exists and is readable")
        loaded.fatal = True
        return loaded
    except UnicodeDecodeError:
        loaded.problems.append(f"{label}: not UTF-8 text; save the file as UTF-8")
        loaded.fatal = True
        return loaded
    try:
        loader = _Loader(text)       # its reader refuses a control character (a NUL, an ESC) anywhere
    except yaml.reader.ReaderError as exc:
        loaded.problems.append(_unacceptable(label, text, exc))
        loaded.fatal = True
        return loaded
    loader.duplicates = []
    loader.renumbered = []
    try:
        loaded.data = loader.get_single_data()
    except RecursionError:
        loaded.problems.append(f"{label}: bad YAML syntax: brackets or indentation nested too deeply to read; "
                               "a mapping file needs a few levels (attributes: {email: {from: email}})")
        loaded.fatal = True
        return loaded
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        loaded.problems.append(f"{label}{where}: bad YAML syntax: {what}; fix the file at that line")
        loaded.fatal = True
        return loaded
    except yaml.YAMLError as exc:
        loaded.problems.append(f"{label}: bad YAML syntax: {exc}")
        loaded.fatal = True
        return loaded
    finally:
        loader.dispose()
    for line, key, first in loader.duplicates:
        path_ = _path_of_line(loaded.data, line)
        shown = ".".join(str(p) for p in path_) if path_ else key
        what = (f"duplicate target: attribute '{key}' has two rules" if path_[:1] == ("attributes",)
                and len(path_) == 2 else f"duplicate key: '{key}' is given twice")
        loaded.problems.append(f"{label}: {shown} (line {line}): {what} (first at line {first}); "
                               f"keep only one")
    for mark, written, value in loader.renumbered:   # a flow mapping holds several keys on one line
        base = "base 60" if ":" in written else "octal"
        loaded.problems.append(f"{label} (line {mark.line + 1}, column {mark.column + 1}): YAML reads {written} "
                               f"as the {base} number {value}; put it in quotes (\"{written}\") to keep it as "
                               "written")
    return loaded


def _unacceptable(label: str, text: str, exc: yaml.reader.ReaderError) -> str:
    """The problem of a character YAML does not allow, by line and column (the reader gives a position)."""
    before = text[:exc.position]
    line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return (f"{label} (line {line}, column {column}): the character U+{code:04X} is not allowed in a YAML file; "
            "remove it (write the file as plain text)")


def _path_of_line(data: Any, line: int, prefix: Path_ = ()) -> Path_:
    """The key path whose key sits on ``line`` (to name a duplicate key by its full path)."""
    if isinstance(data, _LinedDict):
        for key, key_line in data.lines.items():
            if key_line == line:
                return (*prefix, key)
            found = _path_of_line(data[key], line, (*prefix, key))
            if found:
                return found
    return ()


def _is_atomic(path: Path_) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path, strict=True))
               for p in ATOMIC_PATHS)


def record_origins(data: Any, label: str, origins: Origins, prefix: Path_ = ()) -> None:
    """Note the file and line of every key in ``data`` (the default file first, then the tenant's).

    Where the tenant's value replaces the default's whole (an atomic path, a list, a scalar), the
    default's deeper keys are forgotten, so a problem is never blamed on a line that no longer counts.
    """
    if isinstance(data, list):
        for i, item in enumerate(data):
            record_origins(item, label, origins, (*prefix, i))
        return
    if not isinstance(data, dict):
        return
    lines = getattr(data, "lines", {})
    for key, value in data.items():
        path = (*prefix, key)
        if _is_atomic(path) or not isinstance(value, dict):
            for old in [p for p in origins.where if len(p) > len(path) and p[:len(path)] == path]:
                del origins.where[old]
        origins.where[path] = (label, lines.get(key, 0))
        record_origins(value, label, origins, path)


def deep_merge(base: Any, override: Any, prefix: Path_ = ()) -> Any:
    """``override`` over ``base``: mappings merge key by key, ``null`` removes a key, anything else
    (lists, scalars, and the atomic paths) replaces."""
    if not isinstance(base, dict) or not isinstance(override, dict) or (prefix and _is_atomic(prefix)):
        return copy.deepcopy(override)
    out = {k: copy.deepcopy(v) for k, v in base.items()}
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = deep_merge(out[key], value, (*prefix, key))
        else:
            out[key] = copy.deepcopy(value)
    return out


def plain(data: Any) -> Any:
    """Plain dicts and lists without line bookkeeping and without ``null`` entries (``null`` means
    "not set" everywhere in a mapping, so the merged result never holds one in a mapping)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
