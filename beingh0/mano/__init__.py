"""The MANO hand layer: index tables, reference LBS, safe loading, the model module and fitting.

Heavy submodules load lazily so ``beingh0.ops`` can import ``beingh0.mano.lbs`` without a cycle.
"""
from . import constants, lbs  # noqa: F401  (no further imports: safe for beingh0.ops)

_LAZY = {
    "ManoModel": "model", "ManoOutput": "model", "mirror_pose": "model", "mirror_points": "model",
    "load_model_file": "io", "load_mano_pickle": "io", "save_model": "io", "UnsafePickleError": "io",
    "generate_hand_model": "embedded", "write_mano_pickle": "embedded",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'beingh0.mano' has no attribute {name!r}")


__all__ = list(_LAZY) + ["constants", "lbs"]
