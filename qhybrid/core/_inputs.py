"""Reading what users hand in (specs, datasets, manifests) without trusting it.

A file must be a regular file (not a FIFO, a device or a folder), at most
:data:`MAX_INPUT_BYTES` long, and valid UTF-8; YAML must not repeat a key; neither YAML nor JSON
may nest deeper than the parsers can follow. Every refusal is an
:class:`~qhybrid.core.InvalidInputError` (of the caller's subclass) naming the field.
"""

from __future__ import annotations

import errno
import json
import stat
from pathlib import Path
from typing import Any

import yaml

from qhybrid.core._errors import InvalidInputError

MAX_INPUT_BYTES = 16 * 1024 * 1024
"""Largest spec, dataset or manifest read (16 MiB)."""

MAX_PATH_COMPONENT = 255
"""Longest file or folder name most file systems allow, in bytes."""


def check_path(path: Path, *, field: str, error: type[InvalidInputError] = InvalidInputError,
               ) -> None:
    """Refuse a path no file system could hold (a name over 255 bytes, NUL bytes).

    Raises:
        InvalidInputError: Of class ``error``, naming ``field``.
    """
    text = str(path)
    if "\0" in text:
        raise error(f"{text!r} contains a NUL byte", field=field)
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_PATH_COMPONENT:
            raise error(f"a path component of {text[:80]}... is longer than "
                        f"{MAX_PATH_COMPONENT} bytes", field=field)


def regular_file(path: Path, *, field: str, what: str,
                 error: type[InvalidInputError] = InvalidInputError,
                 limit: int = MAX_INPUT_BYTES, missing: str = "") -> int:
    """The size of ``path``, checked to be a regular file of at most ``limit`` bytes.

    ``missing`` is added to the message when the file does not exist (how to create it).

    Raises:
        InvalidInputError: Of class ``error``, naming ``field``: missing, unreadable, not a
            regular file, or too large.
    """
    check_path(path, field=field, error=error)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist{missing}", field=field) from None
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise error(f"cannot read {what} {path}: {reason}", field=field) from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is not a regular file", field=field)
    if info.st_size > limit:
        raise error(f"{what} {path} has {info.st_size} bytes; at most {limit} are read",
                    field=field)
    return info.st_size


def read_input_bytes(path: Path, *, field: str, what: str,
                     error: type[InvalidInputError] = InvalidInputError,
                     limit: int = MAX_INPUT_BYTES, missing: str = "") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (e.g. a QPY circuit).

    Raises:
        InvalidInputError: Of class ``error``, naming ``field``.
    """
    regular_file(path, field=field, what=what, error=error, limit=limit, missing=missing)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}", field=field) from None
    if len(data) > limit:  # the size grew after stat, or the file system lied
        raise error(f"{what} {path} is larger than {limit} bytes", field=field)
    return data


def read_input(path: Path, *, field: str, what: str,
               error: type[InvalidInputError] = InvalidInputError,
               limit: int = MAX_INPUT_BYTES, missing: str = "") -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises:
        InvalidInputError: Of class ``error``, naming ``field``.
    """
    data = read_input_bytes(path, field=field, what=what, error=error, limit=limit,
                            missing=missing)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not valid UTF-8 (byte {exc.start})",
                    field=field) from None


# libyaml's parser when PyYAML was built with it (about 9x faster on a spec), else Python's.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """YAML's safe loader, refusing a mapping that repeats a key (YAML says keys are unique;
    PyYAML would silently keep the last one)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults` merges keys that explicit ones may override
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            continue  # unhashable keys: the constructor itself refuses them below
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (line {mark.line + 1})", mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=True))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_yaml(text: str, *, source: str, field: str,
               error: type[InvalidInputError] = InvalidInputError) -> object:
    """Parse YAML safely: no repeated keys, no nesting deeper than the parser can follow.

    Raises:
        InvalidInputError: Of class ``error``, naming ``field``.
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit
            raise error(f"{source}: nested too deeply", field=field) from None
        raise error(f"{source}: malformed YAML: {exc}", field=field) from None
    except RecursionError:  # Python's parser, or a constructor, at its recursion limit
        raise error(f"{source}: nested too deeply", field=field) from None


def parse_json(text: str, *, source: str, field: str,
               error: type[InvalidInputError] = InvalidInputError) -> object:
    """Parse JSON: standard JSON only (no NaN or Infinity), no nesting deeper than the parser
    can follow.

    Raises:
        InvalidInputError: Of class ``error``, naming ``field``.
    """
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        return json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise error(f"{source}: nested too deeply", field=field) from None
    except ValueError as exc:
        raise error(f"{source}: not valid JSON: {exc}", field=field) from None
