"""Shared tiny fixtures: one tiny VLA per test session (building it costs about a second)."""
import pytest

from beingh0.tokenizer.layout import TokenLayout


@pytest.fixture(scope="session")
def tiny_vla():
    from beingh0.vla.model import VLA

    return VLA.from_preset("tiny", seed=0)


def random_motion(layout: TokenLayout, seconds: int, seed: int = 0):
    """(seconds, tokens_per_block) well-formed motion ids."""
    import torch

    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, layout.codes, (seconds, layout.parts, layout.groups, layout.steps, layout.layers), generator=g)
    return layout.codes_to_ids(codes)
