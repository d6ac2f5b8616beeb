"""The environment variables a pydantic-settings class reads when it is built.

``BaseSettings()`` reads ``os.environ`` inside the library's own code (its environment and
dotenv sources), which the body's code does not show. A body that reaches such a class is
keyed by the variables its fields can be read from, as pydantic-settings itself names them
(prefix, aliases, case, nested delimiter), and by whether its ``env_file`` exists (what an
existing one holds is seen when the body opens it, as any data file). Where that cannot be
told (sources of its own making, the library's internals changed), ``settings_reads`` returns
None and the whole environment is keyed instead. A settings class held in another's field (by its annotation or
its default_factory) is built with it and read too; settings built with init keywords that change where they read
(``Settings(_env_prefix="OTHER_")``) are for the caller to see (``init_keywords``).
"""

from __future__ import annotations

import inspect
import os
import sys
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ()


@dataclass(frozen=True)
class SettingsReads:
    """Where a settings class reads the environment: variables by name and by prefix, and its env files."""

    names: tuple[str, ...]  # lower-cased unless case_sensitive
    prefixes: tuple[str, ...]  # nested fields (env_nested_delimiter): every variable starting with one
    case_sensitive: bool
    files: tuple[str, ...]  # env_file, as configured (relative to the current folder when built)


def is_settings_class(value: Any) -> bool:
    """Return True when ``value`` is a subclass of pydantic-settings' BaseSettings (only if that is loaded)."""
    module = sys.modules.get("pydantic_settings")
    base = getattr(module, "BaseSettings", None)
    return isinstance(value, type) and isinstance(base, type) and value is not base and issubclass(value, base)


def settings_reads(cls: type) -> tuple[SettingsReads, ...] | None:
    """Return where ``cls`` (a BaseSettings subclass) and the settings classes its fields build read the
    environment; None when that is not known."""
    found: list[SettingsReads] = []
    pending, met = [cls], {id(cls)}
    while pending:
        reads = _class_reads(pending.pop())
        if reads is None:
            return None
        own, nested = reads
        found.append(own)
        for inner in nested:
            if id(inner) not in met:
                met.add(id(inner))
                pending.append(inner)
    return tuple(found)


def _class_reads(cls: type) -> tuple[SettingsReads, list[type]] | None:
    """Return where ``cls`` itself reads the environment, and the settings classes held in its fields."""
    settings: Any = cls  # a pydantic model class, which the checker knows as a plain type here
    try:
        from pydantic_settings import BaseSettings, EnvSettingsSource

        if getattr(settings.settings_customise_sources, "__func__", None) \
                is not getattr(BaseSettings.settings_customise_sources, "__func__", None) \
                and not _standard_sources(settings):
            return None  # sources of its own making: which variables they read is not known
        # The library's own naming of each field's variables (prefix, aliases, case), whatever its version does.
        source = EnvSettingsSource(settings)
        names: set[str] = set()
        nested: list[type] = []
        for field_name, field in settings.model_fields.items():
            for _, env_name, _ in source._extract_field_info(field, field_name):
                names.add(env_name)
            # A settings class in a field reads its own variables when built for it (default_factory=Inner), and
            # may be (Inner | None, list[Inner]): keyed as well, whichever it is.
            nested.extend(_settings_classes(field.annotation))
            nested.extend(_settings_classes(field.default_factory))
        case_sensitive = bool(source.case_sensitive)
        prefixes: set[str] = set()
        delimiter = source.env_nested_delimiter
        if delimiter:
            # Nested fields read every variable below theirs (named through aliases too, as the names are); a variable
            # under env_prefix that names no field is ignored by the library, and not keyed (APP_LOG_LEVEL).
            prefixes.update(f"{name}{delimiter}" for name in names)
        files = settings.model_config.get("env_file")
        if files is None:
            listed: Iterable[Any] = ()
        elif isinstance(files, (str, os.PathLike)):
            listed = (files,)
        else:
            listed = tuple(files)
    except Exception:  # the library's internals are not what this reads: keyed whole, never missed
        return None
    fold = (lambda text: text) if case_sensitive else str.lower
    return SettingsReads(tuple(sorted(fold(n) for n in names)), tuple(sorted(fold(p) for p in prefixes)),
                         case_sensitive, tuple(os.fspath(f) for f in listed)), nested


def _standard_sources(settings: Any) -> bool:
    """Return True when the class's own ``settings_customise_sources`` gives back only sources it was handed (fewer of
    them, or in another order, as the documentation's examples do): those read what its config names."""
    from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource, InitSettingsSource, SecretsSettingsSource

    handed = {"init_settings": InitSettingsSource(settings, init_kwargs={}),
              "env_settings": EnvSettingsSource(settings),
              "dotenv_settings": DotEnvSettingsSource(settings),
              "file_secret_settings": SecretsSettingsSource(settings)}
    given = settings.settings_customise_sources(settings, **handed)
    return all(any(source is standard for standard in handed.values()) for source in given)


def _settings_classes(annotation: Any) -> list[type]:
    """Return the settings classes ``annotation`` names, through Optional, unions, Annotated and generics."""
    if is_settings_class(annotation):
        return [annotation]
    found: list[type] = []
    for argument in typing.get_args(annotation):
        found.extend(_settings_classes(argument))
    return found


def init_keywords(passed: Iterable[str]) -> frozenset[str]:
    """Return those of the keywords ``passed`` that BaseSettings() takes to change where it reads (``_env_prefix``,
    ``_env_file``, ...); every ``_``-prefixed one where its signature cannot be read."""
    private = frozenset(name for name in passed if name.startswith("_") and not name.startswith("__"))
    if not private:
        return private
    module = sys.modules.get("pydantic_settings")
    try:
        parameters = inspect.signature(module.BaseSettings.__init__).parameters  # type: ignore[union-attr]
    except Exception:  # not what this version reads: any of them may be one
        return private
    return private & frozenset(parameters)


def file_reads(paths: Iterable[str]) -> SettingsReads:
    """Return the reads of env files only (given to BaseSettings() as ``_env_file``): whether each exists."""
    return SettingsReads((), (), True, tuple(paths))


def settings_values(reads: SettingsReads) -> dict[str, str]:
    """Return what ``reads`` sees now, by label: each variable's value (all of those that match it, when case does
    not count), every variable under each nested prefix, and whether each env file exists."""
    found: dict[str, list[str]] = {}
    names = set(reads.names)
    for variable, value in os.environ.items():
        key = variable if reads.case_sensitive else variable.lower()
        if key in names:
            found.setdefault(key, []).append(f"{variable}={value}")
        for prefix in reads.prefixes:
            if key.startswith(prefix):
                found.setdefault(f"{prefix}*", []).append(f"{variable}={value}")
    values = {name: "\0".join(sorted(found.get(name, ["\0unset"]))) for name in reads.names}
    values.update({f"{prefix}*": "\0".join(sorted(found.get(f"{prefix}*", []))) for prefix in reads.prefixes})
    for path in reads.files:
        full = os.path.abspath(os.path.expanduser(path))
        values[f"env_file {path}"] = f"{full}\0{'present' if os.path.isfile(full) else 'absent'}"
    return values


def settings_text(reads: SettingsReads) -> str:
    """Return settings_values(reads) as one text, compared on every call of code that reaches the class."""
    return "\0\0".join(f"{label}\0{value}" for label, value in sorted(settings_values(reads).items()))
