"""Import transformers' model code safely from a source checkout.

The checkout's top-level ``kernels/`` folder (our Triton sources, installed as ``beingh0.kernels``)
has the import name of Hugging Face's ``kernels`` distribution. When the checkout root is on
``sys.path`` (``PYTHONPATH=.``, ``python -m`` from the root) and that distribution is installed,
transformers sees its metadata, imports our folder instead (``from kernels import CUDAProperties``)
and every InternVL import fails. :func:`import_transformers_models` imports transformers' hub-kernel
integration once with those ``sys.path`` entries hidden; afterwards the right module is cached.
An installed beingh0 has no top-level ``kernels`` and is not affected.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

_SOURCE_KERNELS = (Path(__file__).resolve().parents[2] / "kernels" / "__init__.py").resolve()


def _is_source_kernels(path_entry: str) -> bool:
    f = Path(path_entry or os.getcwd()) / "kernels" / "__init__.py"
    try:
        return f.exists() and f.resolve() == _SOURCE_KERNELS
    except OSError:
        return False


def import_transformers_models() -> None:
    """Import ``transformers.integrations.hub_kernels`` (what InternVL's modeling code pulls in) without
    the checkout's ``kernels/`` shadowing Hugging Face's package."""
    if "transformers.integrations.hub_kernels" in sys.modules:
        return
    mod = sys.modules.get("kernels")
    ours = mod is not None and Path(getattr(mod, "__file__", "") or "").resolve() == _SOURCE_KERNELS
    shadowing = [p for p in sys.path if _is_source_kernels(p)]
    if not shadowing and not ours:
        importlib.import_module("transformers.integrations.hub_kernels")
        return
    saved = sys.path[:]
    if ours:
        del sys.modules["kernels"]
    sys.path[:] = [p for p in sys.path if p not in shadowing]
    try:
        importlib.invalidate_caches()
        importlib.import_module("transformers.integrations.hub_kernels")
    finally:
        sys.path[:] = saved
