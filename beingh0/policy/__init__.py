"""Post-training (paper section 4.3): the VLA as encoder + proprioception token + action queries + L1 head.

:mod:`.normalize` (state/action statistics, applied in training and inverted at inference),
:mod:`.config` (:class:`PolicyConfig`), :mod:`.prompt` (the one prompt builder of training and serving),
:mod:`.model` (:class:`BeingH0Policy`: LeRobot-style ``select_action`` / ``predict_action_chunk`` /
``reset``, ``save_pretrained`` / ``from_pretrained``, tensor-only ``forward_core`` for export),
:mod:`.data` (robot demonstrations -> batches), :mod:`.train` (``beingh0 posttrain``),
:mod:`.evaluate` (open-loop L1 and plots), :mod:`.study` (data-efficiency study).
"""
from .config import PolicyConfig
from .model import BeingH0Policy, PolicySpec
from .normalize import Normalizer, feature_stats
from .prompt import PromptBuilder

__all__ = ["BeingH0Policy", "Normalizer", "PolicyConfig", "PolicySpec", "PromptBuilder", "feature_stats"]
