"""The arguments of an API call, checked against the called method's annotations.

Every method callable through the actor message API (``runtime.actor.exposed``) is
annotated; :func:`bind_arguments` binds a call's plain-data arguments to its
signature and checks each one against its annotation before the method runs, so a
malformed argument is a ``bad_request`` that names the argument, the value's type and
what is accepted, never an exception inside the actor.

The check is ``msgspec.convert`` in strict mode: no coercion from strings, ``bool`` is
not an ``int`` or a ``float``, an ``int`` is a ``float``, and msgpack's arrays are
accepted where a ``tuple`` is annotated (the API delivers no tuples). Ranges are part
of the annotation: ``Annotated[int, msgspec.Meta(ge=1, le=10_000)]``.

>>> def events(run_id: str, limit: Annotated[int, msgspec.Meta(ge=1)] = 1000) -> None: ...
>>> bind_arguments(events, "runs.events", ["r1"], {"limit": "5"})
Traceback (most recent call last):
...
runtime.errors.CallError: runs.events: argument 'limit' is str, not accepted: \
Expected `int`, got `str`; accepted: int >= 1
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import msgspec

from runtime.errors import CallError

__all__ = ["accepted", "bind_arguments", "resolve_annotations"]


@functools.cache
def resolve_annotations(function: Callable[..., Any]) -> Mapping[str, Any]:
    """The resolved annotations of ``function``'s parameters (``Annotated`` kept).

    Modules use ``from __future__ import annotations``: the strings are evaluated here,
    once per function. Raises ``NameError`` for an annotation that names nothing (a
    name imported only under ``TYPE_CHECKING``): a defect the tests catch.
    """
    hints = typing.get_type_hints(function, include_extras=True)
    hints.pop("return", None)
    return types.MappingProxyType(hints)


def bind_arguments(
    method: Callable[..., Any],
    name: str,
    args: Sequence[object],
    kwargs: Mapping[Any, object],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Bind and check a call's arguments; returns them as the method takes them.

    ``name`` is how the call is reported (``runs.show``). Raises :class:`CallError`
    ``bad_request`` for a wrong number of arguments, an unknown keyword, or a value its
    annotation does not accept.
    """
    for key in kwargs:
        if not isinstance(key, str):
            raise CallError(
                "bad_request",
                f"{name}: keyword argument names are strings, got {type(key).__name__} {key!r}",
            )
    signature = inspect.signature(method)
    try:
        bound = signature.bind(*args, **typing.cast("Mapping[str, object]", kwargs))
    except TypeError as exc:
        raise CallError("bad_request", f"{name}: {exc}") from None
    hints = resolve_annotations(_function_of(method))
    for parameter_name, value in bound.arguments.items():
        hint = hints.get(parameter_name, Any)
        kind = signature.parameters[parameter_name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            bound.arguments[parameter_name] = tuple(
                _checked(name, f"{parameter_name}[{i}]", hint, v) for i, v in enumerate(value)
            )
        elif kind is inspect.Parameter.VAR_KEYWORD:
            bound.arguments[parameter_name] = {
                k: _checked(name, k, hint, v) for k, v in value.items()
            }
        else:
            bound.arguments[parameter_name] = _checked(name, parameter_name, hint, value)
    return bound.args, bound.kwargs


def _function_of(method: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function whose annotations describe ``method`` (a function, a bound
    method, or an object with ``__call__``)."""
    function = getattr(method, "__func__", None)
    if function is not None:
        return typing.cast("Callable[..., Any]", function)
    if inspect.isfunction(method):
        return method
    return type(method).__call__


def _checked(name: str, argument: str, hint: Any, value: object) -> Any:
    if hint is Any:
        return value  # passed through as it came (arrays, messages, anything plain)
    try:
        return msgspec.convert(value, hint, strict=True)
    except msgspec.ValidationError as exc:
        why = str(exc).replace("`$", f"`{argument}")
        raise CallError(
            "bad_request",
            f"{name}: argument {argument!r} is {_kind(value)}, not accepted: {why}; "
            f"accepted: {accepted(hint)}",
        ) from None
    except (TypeError, ValueError) as exc:
        # An annotation msgspec cannot check is the method's defect, not the caller's;
        # the tests resolve every exposed method's annotations so none ships.
        raise CallError(
            "internal", f"{name}: argument {argument!r} cannot be checked: {exc}"
        ) from None


def _kind(value: object) -> str:
    """The value's type as a client in any language would name it."""
    if value is None:
        return "nil"
    return {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        bytes: "bytes",
        list: "an array",
        tuple: "an array",
        dict: "a map",
    }.get(type(value), type(value).__name__)


def accepted(hint: Any) -> str:
    """An annotation in words: ``str | None``, ``int in 1..10000``, ``list[str]``."""
    if hint is Any:
        return "any value"
    if hint is type(None) or hint is None:
        return "nil"
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        return accepted(base) + "".join(_bounds(e) for e in extras)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(accepted(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    args = typing.get_args(hint)
    if origin is dict and len(args) == 2:
        return f"a map of {accepted(args[0])} to {accepted(args[1])}"
    if origin in (list, set, frozenset) and len(args) == 1:
        return f"an array of {accepted(args[0])}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"an array of {accepted(args[0])}"
        return f"an array [{', '.join(accepted(a) for a in args)}]"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(map(accepted, args))}]"
    return str(getattr(hint, "__name__", hint))


def _bounds(extra: object) -> str:
    if not isinstance(extra, msgspec.Meta):
        return ""
    if extra.ge is not None and extra.le is not None:
        return f" in {extra.ge}..{extra.le}"
    parts = [
        f" {sign} {bound}"
        for sign, bound in ((">=", extra.ge), (">", extra.gt), ("<=", extra.le), ("<", extra.lt))
        if bound is not None
    ]
    return "".join(parts)
