"""Option values converted without Pydantic (cli/coercion.py) come out exactly as Typer's own
coercion makes them: same value, same type, same error message.

Why a table against Typer itself: the shortcut exists only for start-up time, so the only
acceptable difference from Typer is the time it takes. Each case runs both ways in this
process: Typer's ``build_runtime_param`` as shipped, and ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer import _coercion
from typer import core as typer_core
from typer._click.exceptions import BadParameter
from typer.models import ArgumentInfo, OptionInfo, ParameterInfo

from mxshift.cli import app, coercion


def _both(annotation: Any, info: ParameterInfo, value: Any) -> tuple[object, object]:
    """(ours, Typer's) outcome for ``value``: the value, or ("error", message)."""
    descriptor = _coercion.resolve_type_descriptor(annotation=annotation, parameter_info=info)
    outcomes = []
    for build in (typer_core.build_runtime_param, _coercion.build_runtime_param):
        runtime = build(descriptor)
        try:
            # param/ctx are what the messages name; None is what Typer tolerates too
            outcomes.append(runtime.coerce(value, param=_Param(), ctx=None))  # type: ignore[arg-type]
        except BadParameter as exc:
            outcomes.append(("error", exc.format_message()))
    return outcomes[0], outcomes[1]


class _Param:
    """The attributes of a Click parameter that coercion reads."""

    multiple = False
    nargs = 1
    name = "value"

    def get_error_hint(self, ctx: object = None) -> str:
        return "'--value'"


def test_installed_for_the_command_line() -> None:
    assert coercion.install()  # idempotent: mxshift.cli installed it already
    assert typer_core.build_runtime_param is not _coercion.build_runtime_param


@pytest.mark.parametrize("value", ["alice@example.com", "", " spaced ", "ünï", "-", "0"])
def test_str_values(value: str) -> None:
    ours, typers = _both(str, OptionInfo(), value)
    assert ours == typers and type(ours) is type(typers) is str


@pytest.mark.parametrize("value", [True, False, None])
def test_bool_values(value: bool | None) -> None:
    ours, typers = _both(bool, OptionInfo(), value)
    assert ours == typers and type(ours) is type(typers)


@pytest.mark.parametrize("value", ["project", ".", "", "/tmp/x/y", "~/p", "a b/ü", Path("p"),
                                   Path(".")])
def test_path_values(value: str | Path) -> None:
    ours, typers = _both(Path, OptionInfo(), value)
    assert ours == typers and type(ours) is type(typers)


def test_path_checks_stay_typers(tmp_path: Path) -> None:
    a_file = tmp_path / "f.csv"
    a_file.write_text("x")
    missing = tmp_path / "missing"
    cases = [
        (ArgumentInfo(exists=True), str(a_file)),
        (ArgumentInfo(exists=True), str(missing)),            # error: does not exist
        (OptionInfo(dir_okay=False), str(tmp_path)),            # error: is a directory
        (OptionInfo(file_okay=False), str(a_file)),             # error: is a file
        (OptionInfo(resolve_path=True), str(tmp_path / "." / "f.csv")),
        (OptionInfo(allow_dash=True), "-"),
    ]
    errors = 0
    for info, value in cases:
        ours, typers = _both(Path, info, value)
        assert ours == typers and type(ours) is type(typers), (info.__dict__, value)
        errors += isinstance(ours, tuple)
    assert errors == 3


@pytest.mark.parametrize("annotation, info, value", [
    (int, OptionInfo(), "8025"),
    (int, OptionInfo(min=1, max=65535), "0"),          # error from Pydantic's bounds
    (int, OptionInfo(), "x"),                          # error
    (float, OptionInfo(min=0.1), "0.5"),
    (list[str], OptionInfo(), ["a", "b"]),
    (str, OptionInfo(parser=str.upper), "abc"),        # a parser: Typer's path
])
def test_other_types_go_to_typer(annotation: Any, info: ParameterInfo, value: Any) -> None:
    descriptor = _coercion.resolve_type_descriptor(annotation=annotation, parameter_info=info)
    assert coercion.plain_kind(descriptor) is None
    ours, typers = _both(annotation, info, value)
    assert ours == typers


def test_a_bad_port_reads_as_typer_says(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["-C", str(tmp_path), "serve", "--port", "http"])
    assert res.exit_code == 2
    assert "Invalid value for '--port'" in res.output and "valid integer" in res.output


def test_typer_is_the_pinned_one() -> None:
    # cli/coercion.py reaches into Typer's private modules: a new Typer must be re-checked
    assert typer.__version__ == "0.29.1"
