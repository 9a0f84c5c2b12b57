"""Optional: register the Being-H0 policy with LeRobot (``pip install lerobot``; not a dependency).

:func:`register` defines, when ``lerobot`` imports, a ``PreTrainedConfig`` subclass registered as
``"beingh0"`` (draccus choice registry, as LeRobot's own policies and its ``lerobot_policy_*``
plugins do) and a ``PreTrainedPolicy`` wrapper that loads a ``beingh0 posttrain`` policy folder and
delegates ``select_action`` / ``predict_action_chunk`` / ``reset`` / ``forward`` to
:class:`beingh0.policy.BeingH0Policy`, so LeRobot's evaluation and control tools can drive it. Our own
normalisation stays inside the policy (LeRobot's pre/post-processors must then be identity).

Honest scope: LeRobot is not installed where this was written, and its API moved between releases
(``lerobot.policies`` vs ``lerobot.common.policies``); both import paths are tried. The test
(``tests/policy/test_lerobot_plugin.py``) skips without ``lerobot`` and otherwise checks the
registration only; training through LeRobot's own trainer is not claimed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import UserValueError

__all__ = ["LEROBOT_NAME", "register"]

LEROBOT_NAME = "beingh0"
_REGISTERED: dict = {}


def _imports():
    try:
        from lerobot.configs.policies import PreTrainedConfig
    except ImportError:
        raise UserValueError("the lerobot package is not installed (pip install lerobot); the Being-H0 policy runs "
                             "without it through beingh0.policy.BeingH0Policy") from None
    try:
        from lerobot.policies.pretrained import PreTrainedPolicy
    except ImportError:
        from lerobot.common.policies.pretrained import (
            PreTrainedPolicy,  # older releases
        )
    return PreTrainedConfig, PreTrainedPolicy


def register():
    """Register with LeRobot (idempotent); returns ``(config_class, policy_class)``."""
    if _REGISTERED:
        return _REGISTERED["config"], _REGISTERED["policy"]
    PreTrainedConfig, PreTrainedPolicy = _imports()

    @PreTrainedConfig.register_subclass(LEROBOT_NAME)
    @dataclass
    class BeingH0LeRobotConfig(PreTrainedConfig):
        policy_path: str = ""
        """A ``beingh0 posttrain`` policy folder (OUT/policy)."""
        chunk_size: int = 16
        n_action_steps: int = 8
        optimizer_lr: float = 1e-4
        extra: dict = field(default_factory=dict)

        @property
        def observation_delta_indices(self):
            return None

        @property
        def action_delta_indices(self):
            return list(range(self.chunk_size))

        @property
        def reward_delta_indices(self):
            return None

        def get_optimizer_preset(self):
            from lerobot.optim.optimizers import AdamWConfig

            return AdamWConfig(lr=self.optimizer_lr)

        def get_scheduler_preset(self):
            return None

        def validate_features(self):
            return None

    class BeingH0LeRobotPolicy(PreTrainedPolicy):
        config_class = BeingH0LeRobotConfig
        name = LEROBOT_NAME

        def __init__(self, config, **kw):
            super().__init__(config)
            from .model import BeingH0Policy

            if not config.policy_path:
                raise UserValueError("set policy_path to a `beingh0 posttrain` policy folder (OUT/policy)")
            self.inner = BeingH0Policy.from_pretrained(config.policy_path)

        def get_optim_params(self):
            return [p for p in self.inner.parameters() if p.requires_grad]

        def reset(self):
            self.inner.reset()

        def select_action(self, batch, **kw):
            return self.inner.select_action(batch)

        def predict_action_chunk(self, batch, **kw):
            return self.inner.predict_action_chunk(batch)

        def forward(self, batch, **kw):
            raise UserValueError("train with `beingh0 posttrain` (its batches come from beingh0's prompt builder); "
                                 "the LeRobot wrapper serves a trained policy")

    _REGISTERED.update(config=BeingH0LeRobotConfig, policy=BeingH0LeRobotPolicy)
    return BeingH0LeRobotConfig, BeingH0LeRobotPolicy
