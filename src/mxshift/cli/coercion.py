"""Typer's coercion of option values, without Pydantic for the plain values our commands take.

Why: Typer 0.29 coerces every option value that is not a boolean flag through a Pydantic
``TypeAdapter``, built on first use; so ``mxshift -C DIR sync`` or ``--mailbox X`` (even
left at its default) imported Pydantic and built its schemas: ~50-70 ms and ~8 MB of every
process's start-up, for a ``str`` that stays a ``str``. Here a ``str`` option passes a
``str`` value through (a ``bool`` one a ``bool``), and a ``Path`` option turns a non-empty ``str`` into a ``Path`` (what
Pydantic does) before Typer's own path checks (exists, file/dir, resolve). Anything else:
other types (int, float, lists), a ``parser=``, any value that is not a plain ``str`` or
``Path``, goes to Typer's own coercion, unchanged, so bounds, errors and their messages
stay Typer's. tests/test_cli_coercion.py checks both give the same result.

This reaches into Typer's private modules (Typer is pinned in pyproject.toml). Should a
Typer upgrade move them, :func:`install` installs nothing and Typer works as shipped
(tests/test_startup.py then fails: Pydantic is back at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

try:
    from typer import core as _typer_core
    from typer._coercion import RuntimeParam, TypeDescriptor
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - a Typer without these: see install()
    _typer_core = None  # type: ignore[assignment]

_installed = False


def install() -> bool:
    """Route Typer's per-parameter coercion through :func:`build_runtime_param`; True if
    installed (idempotent)."""
    global _installed
    if _installed:
        return True
    typer_build = getattr(_typer_core, "build_runtime_param", None)
    if typer_build is None:
        return False

    def build_runtime_param(descriptor: TypeDescriptor) -> RuntimeParam:
        kind = plain_kind(descriptor)
        if kind is None:
            return typer_build(descriptor)
        return PlainRuntimeParam(parameter_info=descriptor.parameter_info,
                                 annotation=descriptor.annotation, kind=kind,
                                 descriptor=descriptor, typer_build=typer_build)

    _typer_core.build_runtime_param = build_runtime_param  # type: ignore[attr-defined]
    _installed = True
    return True


def plain_kind(descriptor: TypeDescriptor) -> str | None:
    """"str", "bool" or "path" for a parameter whose values this module converts itself;
    None for every other (Typer's own coercion)."""
    info = descriptor.parameter_info
    if info.parser is not None or descriptor.file_annotation is not None:
        return None
    if descriptor.annotation is str:
        return "str"
    if descriptor.annotation is bool:  # e.g. --help, which Click hands over as None
        return "bool"
    if descriptor.annotation is Path and info.path_type in (None, Path):
        return "path"
    return None


if _typer_core is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """A ``str`` or ``Path`` parameter: the certain cases here, the rest to Typer."""

        kind: str
        descriptor: TypeDescriptor
        typer_build: Any

        @cached_property
        def _typer(self) -> RuntimeParam:
            return self.typer_build(self.descriptor)  # type: ignore[no-any-return]

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if (self.kind == "str" and type(value) is str) or (
                    self.kind == "bool" and type(value) is bool):
                return value
            if self.kind == "path" and (isinstance(value, Path)
                                        or (type(value) is str and value)):
                path = value if isinstance(value, Path) else Path(value)
                return coerce_cli_path(path, self.parameter_info, path_type=Path,
                                       param=param, ctx=ctx)
            return self._typer._coerce_value(value, param, ctx)
