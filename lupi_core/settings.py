"""Command-line flags generated from typed config dataclasses, so every setting exists once.

A field becomes `--field-name` (or `metadata["flag"]`) with its default, its type
(`metadata["type"]` where the default is None), `metadata["choices"]` and
`metadata["help"]`; a bool becomes `--name / --no-name`. A nested dataclass field
(TrainConfig.align) contributes its own fields' flags. `setting(...)` writes such a field.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def setting(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None, type: Any = None,
            choices: tuple | None = None, runtime: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with what its flag needs. `runtime` fields (device, progress, ...) may
    change when a run resumes; every other field defines the experiment."""
    metadata = {"help": help, "flag": flag, "type": type, "choices": choices, "runtime": runtime}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _flag(field: dataclasses.Field) -> str:
    return "--" + (field.metadata.get("flag") or field.name.replace("_", "-"))


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                            skip: tuple[str, ...] = (), prefix: str = "") -> None:
    """One flag per field of `cls` (see the module docstring); nested fields' dests get `prefix`."""
    for field in dataclasses.fields(cls):
        default = _default(field)
        if field.name in skip:
            continue
        if dataclasses.is_dataclass(default):
            add_dataclass_arguments(parser, type(default), prefix=f"{prefix}{field.name}_")
            continue
        meta = field.metadata
        if isinstance(default, bool):
            parser.add_argument(_flag(field), dest=prefix + field.name, action=argparse.BooleanOptionalAction,
                                default=default, help=meta["help"])
        elif default is dataclasses.MISSING:
            parser.add_argument(_flag(field), dest=prefix + field.name, required=True, help=meta["help"],
                                type=meta["type"], choices=meta["choices"])
        else:
            parser.add_argument(_flag(field), dest=prefix + field.name, default=default,
                                help=meta["help"] if default is None else f"{meta['help']} (default: {default})",
                                type=meta["type"] or type(default), choices=meta["choices"])


def dataclass_from_arguments(cls: type, args: argparse.Namespace, prefix: str = "", **given: Any) -> Any:
    """An instance of `cls` from the parsed flags (nested dataclasses too); `given` wins."""
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in given:
            values[field.name] = given[field.name]
        elif dataclasses.is_dataclass(_default(field)):
            values[field.name] = dataclass_from_arguments(type(_default(field)), args, f"{prefix}{field.name}_")
        elif hasattr(args, prefix + field.name):
            values[field.name] = getattr(args, prefix + field.name)
    return cls(**values)


def runtime_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("runtime")}
