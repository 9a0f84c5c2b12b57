"""The deployment protocol: what a policy must give ``beingh0.deploy`` to be exported, served and run.

A *deployable policy* is an ``nn.Module`` whose ``forward`` takes tensors only, positionally in the
order of :attr:`PolicySpec.inputs`, and returns the action chunk (one tensor, :attr:`PolicySpec.outputs`
has one entry), plus a :class:`PolicySpec` that describes it: names, shapes (``"batch"`` is the dynamic
dimension), dtypes, the normalisation statistics of state and action, and free metadata (preset, chunk
length, tile size, the default prompt's token ids...). Anything else -- the image preprocessing
(:func:`beingh0.ops.warp_align` tiles), state normalisation and action de-normalisation -- happens in
front of / behind the engine (:mod:`.runtime`), identically for every backend.

``beingh0.policy`` provides such a module (``forward_core``); :mod:`.standin` builds one on the tiny
VLA for tests. The spec travels with every artefact: inside the ONNX file (``metadata_props``), in the
TensorRT engine's header (:mod:`.tensorrt`) and at the server's metadata endpoint.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..core.errors import UserValueError

__all__ = ["BATCH", "DTYPES", "SPEC_KEY", "PolicySpec", "TensorSpec"]

#: Name of the dynamic batch dimension in every shape.
BATCH = "batch"
#: Key of the spec (JSON) in an ONNX file's metadata_props and in an engine header.
SPEC_KEY = "beingh0_policy_spec"
#: dtypes a policy input/output may have (numpy names).
DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "uint8", "bool")


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: ``shape`` holds ints and ``"batch"`` (the dynamic dimension)."""

    name: str
    shape: tuple
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))
        if self.dtype not in DTYPES:
            raise UserValueError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        for d in self.shape:
            if not (d == BATCH or (isinstance(d, int) and d > 0)):
                raise UserValueError(f"tensor {self.name!r}: dimension {d!r} must be a positive int or {BATCH!r}")

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == BATCH else int(d) for d in self.shape)

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.shape) if d == BATCH)


@dataclass
class PolicySpec:
    """Description of a deployable policy (see the module docstring)."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    norm: dict[str, list[float]] = field(default_factory=dict)
    """``state_mean``, ``state_std``, ``action_mean``, ``action_std`` (lists); empty: identity."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free JSON-able metadata: ``preset``, ``chunk``, ``action_dim``, ``tile``, ``grid`` (cols, rows),
    ``thumbnail``, ``prompt_ids`` (the default instruction's token ids)..."""

    def __post_init__(self):
        self.inputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.inputs]
        self.outputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.outputs]
        names = [t.name for t in self.inputs + self.outputs]
        if len(set(names)) != len(names):
            raise UserValueError(f"policy spec: tensor names must be unique, got {names}")
        if not self.inputs or len(self.outputs) != 1:
            raise UserValueError("policy spec: needs at least one input and exactly one output (the action chunk)")
        for k, v in self.norm.items():
            if k not in ("state_mean", "state_std", "action_mean", "action_std"):
                raise UserValueError(f"policy spec: unknown normalisation entry {k!r}")
            if any(not np.isfinite(x) for x in v) or (k.endswith("std") and any(x <= 0 for x in v)):
                raise UserValueError(f"policy spec: {k} must be finite (and std > 0)")

    # ------------------------------------------------------------------ access
    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_name(self) -> str:
        return self.outputs[0].name

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return {"inputs": [asdict(t) | {"shape": list(t.shape)} for t in self.inputs],
                "outputs": [asdict(t) | {"shape": list(t.shape)} for t in self.outputs],
                "norm": {k: [float(x) for x in v] for k, v in self.norm.items()}, "meta": self.meta}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> PolicySpec:
        try:
            return cls(inputs=[TensorSpec(t["name"], tuple(t["shape"]), t.get("dtype", "float32")) for t in d["inputs"]],
                       outputs=[TensorSpec(t["name"], tuple(t["shape"]), t.get("dtype", "float32")) for t in d["outputs"]],
                       norm=dict(d.get("norm", {})), meta=dict(d.get("meta", {})))
        except (KeyError, TypeError) as e:
            raise UserValueError(f"malformed policy spec ({type(e).__name__}: {e}); re-export the policy") from None

    @classmethod
    def from_json(cls, text: str) -> PolicySpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise UserValueError(f"policy spec is not JSON ({e}); re-export the policy") from None

    # ------------------------------------------------------------------ normalisation
    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        if "state_mean" not in self.norm:
            return state
        return (state - np.asarray(self.norm["state_mean"], np.float32)) / np.asarray(self.norm["state_std"], np.float32)

    def denormalize_action(self, action: np.ndarray) -> np.ndarray:
        if "action_mean" not in self.norm:
            return action
        return action * np.asarray(self.norm["action_std"], np.float32) + np.asarray(self.norm["action_mean"], np.float32)
