"""The synthetic source: procedural bimanual hand-object videos (see ``beingh0.data.synth``).

The embedded default that the quickstart and the tests train on: no download, CC0, deterministic.
Items are seeds ``"0" .. "n-1"``; options (all optional):

``n`` (64) episodes, ``seconds`` (2.0), ``size`` ([256, 256] = width, height), ``fps`` (15 or 30),
``frames`` (True; False = motion-only), ``format`` ("mp4" or "jpeg"), ``seed`` (0: the
collection), ``supersample`` (1), ``scenario`` (None = mixed; one of ``SCENARIOS``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...core.errors import UserValueError
from ..episode import Episode
from . import Source


def config_from_options(options: dict[str, Any]):
    from ..synth import SynthConfig

    known = {"n", "seconds", "size", "fps", "frames", "format", "seed", "supersample", "scenario"}
    unknown = set(options) - known
    if unknown:
        raise UserValueError(f"synthetic source: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    size = options.get("size", (256, 256))
    if isinstance(size, str):
        size = tuple(int(x) for x in size.lower().split("x"))
    if len(size) != 2:
        raise UserValueError(f"synthetic source: size must be (width, height), got {size!r}")
    return SynthConfig(seconds=float(options.get("seconds", 2.0)), fps=float(options.get("fps", 15.0)),
                       size=(int(size[0]), int(size[1])), frames=bool(options.get("frames", True)),
                       image_format=str(options.get("format", "mp4")), supersample=int(options.get("supersample", 1)),
                       scenario=options.get("scenario")).validate()


def list_items(root: Path | None, options: dict[str, Any]) -> list[str]:
    n = int(options.get("n", 64))
    if n < 0:
        raise UserValueError(f"synthetic source: n must be >= 0, got {n}")
    config_from_options(options)  # fail early on bad options
    return [str(i) for i in range(n)]


def load_item(root: Path | None, item: str, options: dict[str, Any]) -> list[Episode]:
    from ..synth import synth_episode

    try:
        index = int(item)
    except ValueError:
        raise UserValueError(f"synthetic source: items are seeds '0', '1', ..., got {item!r}") from None
    return [synth_episode(int(options.get("seed", 0)), index, config_from_options(options))]


SOURCE = Source(
    name="synthetic",
    license="CC0-1.0",
    description="procedural bimanual hand-object manipulation rendered on the CPU (embedded default, no download)",
    list_items=list_items,
    load_item=load_item,
)
