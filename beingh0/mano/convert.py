"""``beingh0 mano convert`` / ``export-embedded``: safe native copies of hand models."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import UserValueError
from .model import ManoModel


def convert_model(src, dst, side: str | None = None) -> Path:
    """Read a MANO pickle safely (left shapedirs fixed) and write .npz/.safetensors that records the fix.

    A bad ``src`` (missing, malformed, hostile, oversized) or ``dst`` (not .npz/.safetensors, a
    folder) is a one-line ``UserError``; ``dst`` is checked before ``src`` is read.
    """
    dst = Path(dst)
    if dst.suffix not in (".npz", ".safetensors") or dst.is_dir():
        raise UserValueError(f"output {dst}: pass a file name ending in .npz or .safetensors")
    if side not in (None, "right", "left"):
        raise UserValueError(f"side must be 'right', 'left' or None (from the file name), got {side!r}")
    model = ManoModel.from_file(src, side=side)
    from .io import save_model

    meta = {"side": model.side, "shapedirs_fixed": True, "source": Path(src).name}
    return save_model(model.arrays(), dst, meta)


def export_embedded(out_dir, fmt: str = "pkl") -> list[Path]:
    """Write the embedded hand (both sides). ``pkl`` uses MANO's layout and file names so smplx loads it."""
    from .embedded import EMBEDDED_NOTE, EMBEDDED_MODEL_VERSION, generate_hand_model, write_mano_pickle
    from .io import save_model

    if fmt not in ("pkl", "npz", "safetensors"):
        raise UserValueError(f"format must be 'pkl', 'npz' or 'safetensors', got {fmt!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserValueError(f"{out} is a file; pass a folder to write the embedded hand model into")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for side in ("right", "left"):
        arrays = generate_hand_model(side)
        if fmt == "pkl":
            p = out / f"MANO_{side.upper()}.pkl"
            write_mano_pickle(arrays, p)
        else:
            p = out / f"beingh0_embedded_{side}.{fmt}"
            save_model(arrays, p, {"side": side, "shapedirs_fixed": True, "beingh0_version": EMBEDDED_MODEL_VERSION,
                                   "note": EMBEDDED_NOTE})
        paths.append(p)
    return paths
