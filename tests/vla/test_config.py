"""Presets: published InternVL3 sizes (built on the meta device, no memory), tiny, attention, errors."""
import pytest
import torch
from transformers import InternVLForConditionalGeneration

from beingh0.core.errors import UserValueError
from beingh0.vla.config import INTERNVL3_TEXT_VOCAB, PRESETS, tokens_per_tile, vla_config

# ../shared/reference/internvl3-configs.md section J: ViT 304,012,288 + mlp1 + LLM, untied, vocab 151,674.
REFERENCE_PARAMS = {"1b": 938_193_024, "8b": 7_944_373_760, "14b": 15_117_256_704}


def _meta_model(name):
    with torch.device("meta"):
        return InternVLForConditionalGeneration(vla_config(name))


@pytest.mark.parametrize("name", ["1b", "8b", "14b"])
def test_parameter_count_matches_reference(name):
    m = _meta_model(name)
    assert sum(p.numel() for p in m.parameters()) == REFERENCE_PARAMS[name]
    assert sum(p.numel() for p in m.model.vision_tower.parameters()) == 304_012_288
    assert m.lm_head.weight is not m.model.language_model.embed_tokens.weight  # untied, as InternVL3
    assert m.lm_head.weight.shape[0] == INTERNVL3_TEXT_VOCAB


def test_1b_architecture_fields():
    c = vla_config("1b")
    assert c.tie_word_embeddings is False and c.text_config.tie_word_embeddings is False
    assert c.image_token_id == 151667 and c.image_seq_length == 256 == tokens_per_tile(c.vision_config, 0.5)
    t = c.text_config
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads, t.intermediate_size) == (896, 24, 14, 2, 4864)
    assert t.rope_parameters["rope_theta"] == 1e6 and t.rope_parameters["factor"] == 2.0
    assert c.vision_config.attention_bias is True and c.vision_config.patch_size == (14, 14)


def test_sdpa_by_default_and_selectable():
    m = InternVLForConditionalGeneration(vla_config("tiny"))
    assert m.config._attn_implementation == "sdpa"
    assert m.model.language_model.config._attn_implementation == "sdpa"
    assert m.model.vision_tower.config._attn_implementation == "sdpa"
    assert vla_config("tiny", attn_implementation="eager").text_config._attn_implementation == "eager"


def test_tiny_is_small_and_consistent():
    c = vla_config("tiny")
    assert c.image_seq_length == tokens_per_tile(c.vision_config, c.downsample_ratio) == 16
    m = InternVLForConditionalGeneration(c)
    assert sum(p.numel() for p in m.parameters()) < 2_000_000
    assert PRESETS["tiny"].max_tiles >= 2


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserValueError, match="tiny, 1b, 8b, 14b"):
        vla_config("7b")
