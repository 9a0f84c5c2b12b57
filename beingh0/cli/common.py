"""Small helpers shared by the command modules: paths from the current directory, parsers of flag values."""
from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import UserValueError


def user_path(p) -> Path | None:
    """A path the user typed, absolute from the current directory (never from the package's location)."""
    if p is None:
        return None
    return Path.cwd() / Path(p).expanduser()


def default_data_dir() -> Path:
    """``../shared/data`` from the current directory: where a developer checkout keeps the real test
    sequences (absent on a user's machine; the commands that use it then skip it)."""
    return (Path.cwd() / ".." / "shared" / "data").resolve()


def data_dir_arg(parser) -> None:
    parser.add_argument("--data-dir", type=user_path, default=None,
                        help="folder holding dex_retargeting_human_hand/ (default: ../shared/data from the current directory)")


def parse_options(pairs) -> dict:
    """``k=v`` strings -> dict; values parse as JSON when they can (numbers, booleans, lists)."""
    out = {}
    for p in pairs or ():
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise UserValueError(f"--option expects key=value, got {p!r}")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (width, height), both positive."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserValueError(f"{flag} takes WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise UserValueError(f"{flag} must be positive, got {text!r}")
    return w, h


def positive_minutes(text: str) -> float:
    """argparse type of a --minutes budget: a finite number > 0."""
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0")
    return v
