"""Check recipe values against a factory's signature and type annotations.

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``,
``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``Sequence[X]``, ``dict``, unions
(``X | None``), ``pathlib.Path`` (a string) and ``Any``. Anything else is accepted as is.
TOML has no null, so ``None`` can only be a default, never a recipe value.

Numbers are checked against what the libraries below accept: a ``float`` parameter never
receives ``nan`` or ``inf`` (TOML can spell both), and an integer must fit TOML's 64-bit range
(Python's TOML reader accepts larger ones).
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import math
import types
import typing
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, Literal, Union

from snnframe.errors import did_you_mean

_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table"}
INT64 = (-(2**63), 2**63 - 1)  # TOML's integers


def show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings quoted, ``inf`` and ``nan`` as TOML spells them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


def number_problem(value: Any, path: str) -> str | None:
    """Why a TOML number cannot be used as a number (non-finite float, integer past 64 bits), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path}: must be a finite number, got {show(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return f"{path}: {value} is outside TOML's 64-bit integer range [-2**63, 2**63 - 1]"
    return None


def check_value(value: Any, annotation: Any, path: str) -> list[str]:
    """Problems with ``value`` for a parameter annotated ``annotation`` (empty if fine)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in (Any, inspect.Parameter.empty) or isinstance(annotation, typing.TypeVar):
        return []
    if origin is typing.Annotated:
        return check_value(value, args[0], path)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if any(not check_value(value, a, path) for a in options):
            return []
        if len(options) == 1:
            return check_value(value, options[0], path)
        return [f"{path}: expected {' or '.join(_describe(a) for a in options)}, got {show(value)}"]
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return []
        choices = ", ".join(show(a) for a in args)
        hint = did_you_mean(value, [a for a in args if isinstance(a, str)]) if isinstance(value, str) else ""
        return [f"{path}: expected one of {choices}, got {show(value)}{hint}"]
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if not isinstance(value, list):
            return [f"{path}: expected {_describe(annotation)}, got {show(value)}"]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return [f"{path}: expected a list of {len(args)} values, got {show(value)}"]
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        problems: list[str] = []
        for i, (item, item_type) in enumerate(zip(value, item_types)):
            problems += check_value(item, item_type, f"{path}[{i}]")
        return problems
    if origin is dict or annotation is dict or origin is collections.abc.Mapping:
        return [] if isinstance(value, dict) else [f"{path}: expected a table, got {show(value)}"]
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        annotation = str
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and (problem := number_problem(value, path)):
            return [problem]
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and (problem := number_problem(value, path)):
            return [problem]
    elif annotation in (bool, str):
        ok = isinstance(value, annotation)
    else:
        return []  # an annotation we do not check: the factory validates it
    return [] if ok else [f"{path}: expected {_describe(annotation)}, got {show(value)}"]


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(show(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if args and args[0] is not Ellipsis:
            return f"a list of {_plural(args[0])}"
        return "a list"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(annotation: Any) -> str:
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(annotation, _describe(annotation))


def factory_parameters(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword parameters of ``factory`` (annotations resolved) and whether it takes ``**kwargs``."""
    signature = inspect.signature(factory)
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # unresolvable forward references: check what we can
        hints = {}
    params = {}
    takes_any = False
    for name, p in signature.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            takes_any = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            params[name] = p.replace(annotation=hints.get(name, p.annotation))
    return params, takes_any


def check_arguments(
    factory: Callable[..., Any], values: dict[str, Any], injected: tuple[str, ...], path: str, what: str
) -> list[str]:
    """Problems binding recipe ``values`` (keys of the table at ``path``) to ``factory``."""
    params, takes_any = factory_parameters(factory)
    settable = {n: p for n, p in params.items() if n not in injected}
    problems = []
    for key, value in values.items():
        if key in injected:
            problems.append(f"{path}.{key}: is set by snnframe itself and cannot be set in a recipe")
        elif key in settable:
            problems += check_value(value, settable[key].annotation, f"{path}.{key}")
        elif not takes_any:
            accepted = ", ".join(settable) or "none"
            problems.append(
                f"{path}.{key}: unknown key for {what}{did_you_mean(key, settable)}; accepted keys: {accepted}"
            )
    for name, p in settable.items():
        if p.default is p.empty and name not in values:
            problems.append(f"{path}.{name}: missing (required by {what})")
    return problems


def defaults(factory: Callable[..., Any], injected: tuple[str, ...]) -> dict[str, Any]:
    """The factory's default keyword values that TOML can hold (for the resolved recipe)."""
    params, _ = factory_parameters(factory)
    out = {}
    for name, p in params.items():
        if name in injected or p.default is p.empty:
            continue
        value = p.default
        if isinstance(value, tuple):
            value = list(value)
        if _toml_value(value):
            out[name] = value
    return out


def _toml_value(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_toml_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _toml_value(v) for k, v in value.items())
    return False
