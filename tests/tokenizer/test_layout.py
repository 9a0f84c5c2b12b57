"""Token layout: (part, group, step, layer, code) <-> ids, block order, malformed blocks."""
import pytest
import torch

from beingh0.tokenizer import TokenizerConfig, TokenLayout


def test_paper_layout_sizes():
    lay = TokenLayout.from_config(TokenizerConfig.preset("paper"))
    assert (lay.parts, lay.groups, lay.steps, lay.layers, lay.codes) == (2, 2, 4, 8, 512)
    assert lay.tokens_per_block == 128 and lay.vocab_size == 8192
    assert lay.token_id(1, 3, 7) == 4096 + 3 * 512 + 7
    assert lay.position(1, 0, 2, 5) == 64 + 2 * 8 + 5
    for name in ("whole-4groups", "whole-16layers"):
        assert TokenLayout.from_config(TokenizerConfig.preset(name)).tokens_per_block == 128


@pytest.mark.parametrize("preset", ["paper", "whole-4groups", "tiny"])
def test_round_trip(preset):
    lay = TokenLayout.from_config(TokenizerConfig.preset(preset))
    g = torch.Generator().manual_seed(3)
    codes = torch.randint(0, lay.codes, (5, lay.parts, lay.groups, lay.steps, lay.layers), generator=g)
    ids = lay.codes_to_ids(codes)
    assert ids.shape == (5, lay.tokens_per_block) and int(ids.max()) < lay.vocab_size
    torch.testing.assert_close(lay.ids_to_codes(ids), codes, rtol=0, atol=0)
    # position -> (part, layer) of its id, as documented
    part, layer, code = lay.split_id(ids)
    want_part, want_layer = lay.expected_part_layer()
    assert bool((part == want_part).all() and (layer == want_layer).all())
    assert code[0, lay.position(lay.parts - 1, lay.groups - 1, 1, lay.layers - 1)] == codes[0, -1, -1, 1, -1]
    # a flat sequence of whole blocks is accepted too
    torch.testing.assert_close(lay.ids_to_codes(ids.flatten()), codes, rtol=0, atol=0)


def test_errors():
    lay = TokenLayout.from_config(TokenizerConfig.preset("paper"))
    ids = lay.codes_to_ids(torch.zeros(2, 2, 2, 4, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="outside"):
        lay.ids_to_codes(torch.where(torch.arange(128) == 5, 8192, ids))
    with pytest.raises(ValueError, match="outside"):
        lay.ids_to_codes(ids - 1)
    with pytest.raises(ValueError, match="malformed motion block 0: position 0"):
        lay.ids_to_codes(torch.roll(ids, 1, dims=1))             # shifted by one token
    with pytest.raises(ValueError, match="blocks of 128 tokens"):
        lay.ids_to_codes(ids[:, :100])
    with pytest.raises(TypeError, match="integer"):
        lay.ids_to_codes(ids.float())
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 512\)"):
        lay.codes_to_ids(torch.full((1, 2, 2, 4, 8), 512))
