"""``PolicyConfig``: the post-training policy's architecture and behaviour (every default in one place).

What the data decides (state and action dimensions, their names, the cameras and their intrinsics,
the normalisation statistics) is not a config field: it is the policy's ``spec``
(:class:`beingh0.policy.model.PolicySpec`), taken from the training data and saved with the policy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..core.config import validate_config
from ..core.errors import UserValueError
from .normalize import MODES

__all__ = ["FREEZE", "PolicyConfig"]

FREEZE = ("none", "vision", "backbone")


@dataclass(frozen=True)
class PolicyConfig:
    """Being-H0's post-training head on the VLA (paper section 4.3)."""

    chunk: int = field(default=16, metadata={"ge": 1})
    """Actions predicted per forward pass (the action chunk; paper: 16)."""
    n_action_steps: int = field(default=8, metadata={"ge": 1})
    """Actions of each chunk that select_action executes before predicting the next chunk (<= chunk)."""
    num_queries: int = field(default=16, metadata={"ge": 1})
    """Learnable action-query tokens (paper: 16); each predicts chunk / num_queries consecutive actions."""
    proj_hidden: int = field(default=0, metadata={"ge": 0})
    """Hidden width of the 2-layer proprioception MLP (0: the language model's width)."""
    head_hidden: int = field(default=0, metadata={"ge": 0})
    """Hidden width of the 2-layer action head MLP (0: the language model's width)."""
    freeze: str = field(default="none", metadata={"choices": FREEZE})
    """What does not train: none (the paper's choice: VLA + projector + queries + head all train),
    vision (the vision tower stays as pretrained; saves memory and time at 1B+), backbone (only the
    projector, queries and head train: a linear-probe-like baseline)."""
    state_norm: str = field(default="mean_std", metadata={"choices": MODES})
    """Normalisation of observation.state (LeRobot's NormalizationMode; statistics from the training data)."""
    action_norm: str = field(default="mean_std", metadata={"choices": MODES})
    """Normalisation of the action targets (the L1 loss is taken in normalised units)."""
    action_mode: str = field(default="auto", metadata={"choices": ("auto", "absolute", "delta")})
    """delta: the network predicts actions minus the current state (per matching dimension; normalised
    with statistics of those differences) and the state is added back at inference -- openpi's delta
    actions for joint-space targets; absolute: the actions themselves; auto: delta when every action
    dimension has a state dimension (by name, or equal dimensions without names), else absolute."""
    state_history: int = field(default=2, metadata={"ge": 1, "le": 16})
    """Proprioception frames the state token sees (LeRobot's ``n_obs_steps``): the current state and the
    ``state_history - 1`` previous ones, as the normalised current state plus the normalised differences
    ``state[t] - state[t-h]`` (a velocity), projected by the proprio MLP into the one state token. 1 is
    the paper's single-state token; the default 2 is our deviation: one state carries no velocity, and
    the synthetic demos' held-out L1 only beats the repeat-state baseline with it (docs/policy.md).
    Missing frames at an episode start repeat the first state (LeRobot's padding)."""
    state_to_queries: bool = True
    """Add the state token's embedding to every action query's input embedding (the ``[S]`` token stays
    in the sequence). The paper's layout (False) reaches the state only through attention from the
    queries to one token among the ~200 prompt and image tokens: its gradient is ~1000x smaller than
    the head's and a few hundred CPU steps learn only the mean action (docs/policy.md, Diagnosis)."""
    max_tiles: int = field(default=1, metadata={"ge": 1, "le": 12})
    """Image tiles per camera (InternVL dynamic tiling; 1 = one resized tile, the fastest control loop)."""
    thumbnail: bool = False
    """Add InternVL's thumbnail tile when a camera image takes more than one tile."""
    align: bool = True
    """Warp each camera image to Being-H0's virtual camera (weak-perspective alignment) when its
    intrinsics are known; a plain resize otherwise."""
    instruction: str = "perform the task"
    """Instruction used when an observation carries no ``task`` text."""

    def __post_init__(self):
        validate_config(self)
        if self.chunk % self.num_queries and self.num_queries % self.chunk:
            raise UserValueError(f"chunk ({self.chunk}) must be a multiple of num_queries ({self.num_queries}); "
                                 "each query predicts chunk / num_queries actions")
        if self.num_queries > self.chunk:
            raise UserValueError(f"num_queries ({self.num_queries}) must not exceed chunk ({self.chunk})")
        if self.n_action_steps > self.chunk:
            raise UserValueError(f"n_action_steps ({self.n_action_steps}) must be <= chunk ({self.chunk})")

    @property
    def actions_per_query(self) -> int:
        return self.chunk // self.num_queries

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PolicyConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserValueError(f"policy config has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)
