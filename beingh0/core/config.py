"""Config dataclasses: the one validation helper, and command-line flags generated from their fields.

A config is a plain ``@dataclass`` (frozen or not) whose fields carry their defaults, types and
documentation. Each default lives there and nowhere else: the command line builds its flags from
the fields (:func:`add_config_args`) and its config from the flags the user actually gave
(:func:`config_from_args`), so ``--help`` and the library always agree.

Per field, optional ``field(metadata={...})`` keys:

==========  ==============================================================================
``help``    the flag's help text. Without it, the field's attribute docstring (a string
            literal on the line after the field, as in ``TrainConfig``) is used.
``choices`` the allowed values (a ``Literal[...]`` annotation does the same).
``ge`` ``gt`` ``le`` ``lt``   inclusive / exclusive bounds for numbers (and for every element
            of a tuple or list field).
``finite``  ``False`` allows +-inf in a float field (NaN is never allowed).
``flag``    the flag name instead of ``--field-name``.
``cli``     ``False``: no flag for this field (e.g. a format version).
==========  ==============================================================================

Annotations understood: ``bool`` (``--x`` / ``--no-x``), ``int``, ``float``, ``str``, ``Path``,
``Literal[...]``, ``X | None`` (the flag also takes ``none``), ``tuple[int, int]`` (exactly that
many values), ``tuple[int, ...]`` / ``list[int]`` / a bare ``tuple`` (one or more values; a bare
``tuple`` takes its element type from the default).

:func:`validate_config` checks an instance against the same annotations and metadata and raises a
one-line :class:`~beingh0.core.errors.UserValueError` naming the field and what it allows; call it
from ``__post_init__``.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import re
import textwrap
import types
import typing
from pathlib import Path

from .errors import UserValueError

__all__ = ["add_config_args", "config_from_args", "given", "validate_config", "field_docs", "METADATA_KEYS"]

METADATA_KEYS = frozenset({"help", "choices", "ge", "gt", "le", "lt", "finite", "flag", "cli"})
_SCALARS = (bool, int, float, str, Path)


# ------------------------------------------------------------------------------------------------
# reading a config class


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    name: str
    elem: type                       # bool, int, float, str or Path (element type for sequences)
    optional: bool                   # None allowed
    seq: type | None                 # tuple or list for sequence fields, else None
    nargs: int | str | None          # exact count or "+" for sequences
    choices: tuple | None
    meta: typing.Mapping


def _spec(cls, f: dataclasses.Field, tp) -> _FieldSpec:
    meta = f.metadata or {}
    unknown = set(meta) - METADATA_KEYS
    if unknown:
        raise TypeError(f"{cls.__name__}.{f.name}: unknown metadata keys {sorted(unknown)}; known: {sorted(METADATA_KEYS)}")
    optional, choices, seq, nargs = False, None, None, None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}.{f.name}: only 'X | None' unions are supported, got {tp}")
        optional, tp = True, args[0]
        origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        tp = type(choices[0])
    elif tp in (tuple, list) or origin in (tuple, list):
        seq = origin or tp
        args = typing.get_args(tp)
        if args and args[-1] is not Ellipsis and seq is tuple:
            if len(set(args)) != 1:
                raise TypeError(f"{cls.__name__}.{f.name}: tuples of mixed element types are not supported, got {tp}")
            nargs = len(args)
        else:
            nargs = "+"
        if args:
            tp = args[0]
        else:  # bare ``tuple``: element type from the default
            d = _default(f)
            tp = type(d[0]) if isinstance(d, (tuple, list)) and d else str
    if tp not in _SCALARS:
        raise TypeError(f"{cls.__name__}.{f.name}: annotation {tp!r} is not supported "
                        f"(use bool, int, float, str, Path, Literal, X | None, tuple or list)")
    if "choices" in meta:
        choices = tuple(meta["choices"])
    return _FieldSpec(f.name, tp, optional, seq, nargs, choices, meta)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _specs(cls) -> list[tuple[dataclasses.Field, _FieldSpec]]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    hints = typing.get_type_hints(cls, include_extras=False)
    return [(f, _spec(cls, f, hints[f.name])) for f in dataclasses.fields(cls) if f.init]


def field_docs(cls) -> dict[str, str]:
    """``{field: text}`` from each field's ``metadata["help"]`` or, failing that, its attribute
    docstring (the string literal right after the field in the class body); whitespace collapsed."""
    docs: dict[str, str] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (frozen app, REPL): metadata only
        tree = None
    if tree is not None and tree.body and isinstance(tree.body[0], ast.ClassDef):
        body = tree.body[0].body
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                text = " ".join(inspect.cleandoc(nxt.value.value).split())
                docs[stmt.target.id] = re.sub(r"``(.+?)``", r"\1", text)  # reST literals read as plain text
    for f in dataclasses.fields(cls):
        if "help" in (f.metadata or {}):
            docs[f.name] = str(f.metadata["help"])
    return docs


# ------------------------------------------------------------------------------------------------
# validation


def _fmt(v) -> str:
    return "none" if v is None else " ".join(map(_fmt, v)) if isinstance(v, (tuple, list)) else str(v)


def _check_scalar(s: _FieldSpec, v) -> str | None:
    """Why ``v`` is not an allowed element of field ``s`` (None: it is)."""
    e, m = s.elem, s.meta
    if e is bool:
        ok = isinstance(v, bool)
    elif e is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif e is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif e is Path:
        ok = isinstance(v, (str, Path))
    else:
        ok = isinstance(v, e)
    if not ok:
        return f"must be {'true or false' if e is bool else 'an integer' if e is int else 'a number' if e is float else 'a ' + e.__name__}"
    if s.choices is not None and v not in s.choices:
        return f"must be one of {', '.join(map(str, s.choices))}"
    if e in (int, float):
        if isinstance(v, float) and (math.isnan(v) or (math.isinf(v) and m.get("finite", True))):
            return "must be a finite number"
        for key, op, word in (("ge", float.__ge__, ">="), ("gt", float.__gt__, ">"), ("le", float.__le__, "<="), ("lt", float.__lt__, "<")):
            if key in m and not op(float(v), float(m[key])):
                return f"must be {word} {m[key]}"
    return None


def _bounds(s: _FieldSpec) -> str:
    parts = [f"{w} {s.meta[k]}" for k, w in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if k in s.meta]
    return " and ".join(parts)


def _problem(s: _FieldSpec, v) -> str | None:
    if v is None:
        return None if s.optional else "must not be none"
    if s.seq is not None:
        if not isinstance(v, (tuple, list)):
            return f"must be a {s.seq.__name__} of {s.elem.__name__}"
        if isinstance(s.nargs, int) and len(v) != s.nargs:
            return f"must have exactly {s.nargs} values"
        if s.nargs == "+" and len(v) == 0:
            return "must have at least one value"
        for x in v:
            why = _check_scalar(s, x)
            if why:
                return f"every value {why}"
        return None
    return _check_scalar(s, v)


def _short(v, limit: int = 60) -> str:
    """``repr(v)``, cut to about ``limit`` characters (a corrupt file may hold a huge list)."""
    t = repr(v)
    if len(t) <= limit:
        return t
    n = f" ({len(v)} items)" if hasattr(v, "__len__") and not isinstance(v, str) else ""
    return f"{t[:40]}...{n}"


def validate_config(cfg):
    """Check every field of the dataclass instance ``cfg`` against its annotation and metadata
    (type, ``choices``/``Literal``, ``ge``/``gt``/``le``/``lt``, finiteness). Raises one
    :class:`UserValueError` whose single line names each bad field, its value and what is allowed;
    returns ``cfg`` when all is well (so ``__post_init__`` can end with ``validate_config(self)``)."""
    cls = type(cfg)
    problems = []
    for f, s in _specs(cls):
        v = getattr(cfg, f.name)
        why = _problem(s, v)
        if why:
            problems.append(f"{f.name}={_short(v)} {why}")
    if problems:
        raise UserValueError(f"invalid {cls.__name__}: " + "; ".join(problems))
    return cfg


# ------------------------------------------------------------------------------------------------
# command-line flags


def _converter(s: _FieldSpec, flag: str):
    def convert(text: str):
        if s.optional and text.strip().lower() == "none":
            return None
        try:
            v = Path(text) if s.elem is Path else s.elem(text) if s.elem is not float else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if s.elem is int else 'a number'}") from None
        why = _check_scalar(s, v)
        if why:
            raise argparse.ArgumentTypeError(f"{text!r}: {why}")
        return v

    convert.__name__ = s.elem.__name__  # argparse names the type in its messages
    return convert


def _dest(group: str, name: str) -> str:
    return f"{group}.{name}"


def add_config_args(parser, cls, *, group: str | None = None, prefix: str = "", exclude=(), defaults=None,
                    title: str | None = None):
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (an ``ArgumentParser`` or a
    group of one). Flags are ``--<prefix><field-name>`` (``_`` -> ``-``); ``bool`` fields get
    ``--x`` / ``--no-x``. Help comes from ``field_docs`` and ends with the default: that of
    ``defaults`` (an instance, e.g. a preset) when given, else the field's. No default is stored
    in the namespace: only the flags a user gives reach :func:`config_from_args`, so the dataclass
    (or the base config passed there) stays the one source of defaults. Returns the argument group.

    ``group`` (default: the class name) keeps the fields of several configs apart in one namespace;
    ``exclude`` names fields without a flag (as does ``metadata={"cli": False}``)."""
    group = group or cls.__name__
    docs = field_docs(cls)
    doc = inspect.cleandoc(cls.__doc__ or "")
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses writes when a class has no docstring
        doc = ""
    g = parser.add_argument_group(title or f"{cls.__name__} options", doc or None)
    taken = {a.dest for a in getattr(parser, "_actions", ())}
    for f, s in _specs(cls):
        if f.name in exclude or s.meta.get("cli", True) is False:
            continue
        flag = s.meta.get("flag") or f"--{prefix}{f.name.replace('_', '-')}"
        d = getattr(defaults, f.name) if defaults is not None else _default(f)
        text = docs.get(f.name, "")
        if s.elem in (int, float) and _bounds(s):
            text += f" [{_bounds(s)}]"
        if s.optional:
            text += " ('none' for none)"
        if d is not dataclasses.MISSING:
            is_switch = s.elem is bool and s.seq is None and not s.optional
            text += f" (default: {('--' if d else '--no-') + flag[2:] if is_switch else _fmt(d)})"
        text = text.replace("%", "%%").strip()
        dest = _dest(group, f.name)
        if dest in taken:
            raise ValueError(f"flag for {cls.__name__}.{f.name} is already defined; pass another group=")
        kw = dict(dest=dest, default=argparse.SUPPRESS, help=text or None)
        if s.elem is bool and s.seq is None and not s.optional:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        kw["type"] = _converter(s, flag)
        if s.choices is not None:
            kw["metavar"] = "{" + ",".join(map(str, s.choices)) + "}"
        else:
            kw["metavar"] = {int: "N", float: "X", Path: "PATH"}.get(s.elem) or re.sub(r"^-+", "", flag).replace("-", "_").upper()
        if s.seq is not None:
            kw["nargs"] = s.nargs
        g.add_argument(flag, **kw)
    return g


def config_from_args(cls, args: argparse.Namespace, *, group: str | None = None, base=None, **overrides):
    """The ``cls`` instance for the flags in ``args`` that the user gave, on top of ``base`` (an
    instance, e.g. a preset; default: the dataclass defaults), then ``overrides`` (values the
    command sets itself). A value the class rejects becomes a one-line :class:`UserValueError`."""
    group = group or cls.__name__
    values = {}
    for f, s in _specs(cls):
        dest = _dest(group, f.name)
        if hasattr(args, dest):
            v = getattr(args, dest)
            values[f.name] = s.seq(v) if s.seq is not None and v is not None else v
    values.update(overrides)
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except UserValueError:
        raise
    except (ValueError, TypeError) as e:  # the class's own __post_init__ checks: the values came from the user
        bullets = re.sub(r":?\s*\n\s*-\s+", "; ", str(e))  # "invalid X:\n  - a\n  - b" -> "invalid X; a; b"
        raise UserValueError(" ".join(re.sub(r"^([^;]*?); ", r"\1: ", bullets).split())) from e


def given(args: argparse.Namespace, cls, *, group: str | None = None) -> dict:
    """``{field: value}`` of the flags of ``cls`` the user gave (empty: none)."""
    group = group or cls.__name__
    return {f.name: getattr(args, _dest(group, f.name)) for f in dataclasses.fields(cls) if hasattr(args, _dest(group, f.name))}
