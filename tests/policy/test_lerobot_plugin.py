"""The optional LeRobot registration: a one-line error without lerobot; registration where it imports."""
import importlib.util

import pytest

from beingh0.core.errors import UserError
from beingh0.policy.lerobot_plugin import LEROBOT_NAME, register

HAVE = importlib.util.find_spec("lerobot") is not None


@pytest.mark.skipif(HAVE, reason="lerobot is installed")
def test_without_lerobot_register_is_a_one_line_error():
    with pytest.raises(UserError, match="lerobot package is not installed") as e:
        register()
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not HAVE, reason="lerobot is not installed (optional: pip install lerobot)")
def test_registers_with_lerobot():
    from lerobot.configs.policies import PreTrainedConfig

    cfg_cls, pol_cls = register()
    assert PreTrainedConfig.get_choice_class(LEROBOT_NAME) is cfg_cls
    assert pol_cls.name == LEROBOT_NAME and cfg_cls(policy_path="x").action_delta_indices == list(range(16))
