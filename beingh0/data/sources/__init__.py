"""Registry of UniHand sources: every module in this package that defines ``SOURCE`` is one.

A source turns raw data into :class:`~beingh0.data.episode.Episode` objects in two steps, so that
building shards can run as independent jobs (process pool or Ray):

* ``list_items(root, options) -> list[str]``: the independent work items under ``root`` (episode
  files, sequence ids, seeds for the synthetic source), as JSON-able strings, in a stable order;
* ``load_item(root, item, options) -> list[Episode]``: the validated episodes of one item.

``options`` is a plain dict of source-specific settings (JSON-able, recorded in the shard index).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..episode import Episode


@dataclass(frozen=True)
class Source:
    name: str  # registry key, also Episode.source
    license: str  # licence tag written into every episode (e.g. "CC0-1.0", "CC-BY-NC-ND-4.0")
    description: str
    list_items: Callable[[Path | None, dict[str, Any]], list[str]]
    load_item: Callable[[Path | None, str, dict[str, Any]], list[Episode]]
    redistributable: bool = True  # False: shards must reference the original video, never embed it


def sources() -> dict[str, Source]:
    """All sources, by name (modules of this package defining ``SOURCE``)."""
    out: dict[str, Source] = {}
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{m.name}")
        src = getattr(mod, "SOURCE", None)
        if isinstance(src, Source):
            out[src.name] = src
    return out


def get_source(name: str) -> Source:
    srcs = sources()
    if name not in srcs:
        from ...core.errors import UserValueError

        raise UserValueError(f"unknown source {name!r}; available: {', '.join(sorted(srcs)) or 'none'}")
    return srcs[name]
