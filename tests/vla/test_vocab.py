"""Motion vocabulary: the one id mapping (round trip), blocks, allowed ids, the new-row init rule."""
import pytest
import torch
from transformers import InternVLForConditionalGeneration

from beingh0.core.errors import UserValueError
from beingh0.tokenizer.layout import TokenLayout
from beingh0.vla.config import TINY_TEXT_VOCAB, vla_config
from beingh0.vla.text_tokenizer import tiny_tokenizer
from beingh0.vla.vocab import (MOT_END, MOT_START, MotionVocab, add_motion_tokens, init_new_rows, motion_token,
                               paper_layout, resize_for_motion)


@pytest.fixture(scope="module")
def tok_vocab():
    tok = tiny_tokenizer()
    return tok, add_motion_tokens(tok)


def random_blocks(layout: TokenLayout, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, layout.codes, (n, layout.parts, layout.groups, layout.steps, layout.layers), generator=g)
    return layout.codes_to_ids(codes)


def test_paper_layout():
    L = paper_layout()
    assert (L.vocab_size, L.tokens_per_block) == (8192, 128)


def test_round_trip_every_id(tok_vocab):
    tok, v = tok_vocab
    assert v.offset == TINY_TEXT_VOCAB and v.stop == TINY_TEXT_VOCAB + 8194 == len(tok)
    ids = torch.arange(8192)
    llm = v.to_llm(ids)
    assert torch.equal(v.to_motion(llm), ids)
    assert bool(v.is_motion(llm).all()) and not bool(v.is_motion(torch.tensor([0, v.mot_start, v.mot_end])).any())
    # the tokenizer's strings sit exactly at these ids (one mapping, checked against the tokenizer)
    sample = [0, 1, 511, 512, 4095, 8191]
    assert tok.convert_tokens_to_ids([motion_token(k) for k in sample]) == llm[sample].tolist()
    assert tok.convert_tokens_to_ids([MOT_START, MOT_END]) == [v.mot_start, v.mot_end]
    assert tok.decode([v.mot_start, int(llm[7]), v.mot_end]) == f"{MOT_START}{motion_token(7)}{MOT_END}"
    # shapes are kept
    m = torch.randint(0, 8192, (3, 5, 7))
    assert torch.equal(v.to_motion(v.to_llm(m)), m)


def test_mapping_rejects_foreign_ids(tok_vocab):
    _, v = tok_vocab
    with pytest.raises(UserValueError, match="outside"):
        v.to_llm(torch.tensor([0, 8192]))
    with pytest.raises(UserValueError, match="flat index 1 is not a motion token"):
        v.to_motion(torch.tensor([v.offset, v.mot_start]))
    with pytest.raises(TypeError):
        v.to_llm(torch.tensor([1.0]))


def test_blocks_round_trip_and_framing(tok_vocab):
    _, v = tok_vocab
    blocks = random_blocks(v.layout, 3)
    tokens = v.encode_blocks(blocks)
    assert tokens.shape == (3, 130)
    assert (tokens[:, 0] == v.mot_start).all() and (tokens[:, -1] == v.mot_end).all()
    assert torch.equal(v.decode_blocks(tokens.reshape(-1)), blocks)
    bad = tokens.clone()
    bad[1, -1] = v.offset
    with pytest.raises(UserValueError, match="block 1 is not framed"):
        v.decode_blocks(bad)
    shifted = blocks.clone()
    shifted[0] = torch.roll(shifted[0], 1)  # ids at positions of another (part, layer)
    with pytest.raises(UserValueError, match="malformed motion block 0"):
        v.encode_blocks(shifted)


def test_allowed_ranges_follow_the_layout(tok_vocab):
    tok, v = tok_vocab
    r = v.allowed_ranges()
    assert r.shape == (130, 2) and torch.equal(r[0], torch.tensor([v.mot_start, v.mot_start + 1]))
    assert torch.equal(r[-1], torch.tensor([v.mot_end, v.mot_end + 1]))
    blocks = v.encode_blocks(random_blocks(v.layout, 4, seed=1))
    assert bool(((blocks >= r[:, 0]) & (blocks < r[:, 1])).all())  # every well-formed token is allowed
    mask = v.allowed_mask(torch.arange(130), len(tok))
    assert mask.shape == (130, len(tok)) and torch.equal(mask.sum(1), (r[:, 1] - r[:, 0]))
    assert bool(mask[torch.arange(130)[:, None], blocks.T].all())
    assert not bool(mask[:, : v.offset].any())  # no text inside a block
    # a position admits only its own (part, layer): the union over a block's positions is all motion ids
    assert int(mask[1:-1].any(0).sum()) == 8192


def test_existing_motion_tokens_are_reused_and_checked(tok_vocab):
    tok, v = tok_vocab
    assert add_motion_tokens(tok) == v  # idempotent: nothing added twice
    assert len(tok) == v.stop
    with pytest.raises(UserValueError, match="no motion tokens"):
        MotionVocab.from_tokenizer(tiny_tokenizer(), paper_layout())


def test_dict_round_trip(tok_vocab):
    _, v = tok_vocab
    assert MotionVocab.from_dict(v.to_dict()) == v


def test_init_rule_matches_statistics():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(4000, 6, generator=g, dtype=torch.float64) * torch.tensor([0.5, 1, 2, 3, 0.1, 1]) + torch.arange(6.0)
    w = torch.cat([ref, torch.zeros(5000, 6, dtype=torch.float64)])
    init_new_rows(w, 4000, slice(4000, 9000), noise=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(w[:4000], ref)
    new = w[4000:]
    torch.testing.assert_close(new.mean(0), ref.mean(0), atol=4 * 0.1 * ref.std(0).max() / 70, rtol=0)
    torch.testing.assert_close(new.std(0), 0.1 * ref.std(0), rtol=0.05, atol=0)
    assert len({tuple(r.tolist()) for r in new[:50]}) == 50  # symmetry broken


def test_resize_keeps_text_rows_and_unties(tok_vocab):
    _, v = tok_vocab
    torch.manual_seed(0)
    m = InternVLForConditionalGeneration(vla_config("tiny"))
    emb0 = m.get_input_embeddings().weight.detach().clone()
    head0 = m.get_output_embeddings().weight.detach().clone()
    resize_for_motion(m, v, noise=0.1, seed=0)
    emb, head = m.get_input_embeddings().weight, m.get_output_embeddings().weight
    assert emb.shape[0] == head.shape[0] == v.stop and emb is not head
    assert torch.equal(emb[: v.offset], emb0) and torch.equal(head[: v.offset], head0)
    for w, w0 in ((emb, emb0), (head, head0)):
        torch.testing.assert_close(w[v.offset:].double().mean(0), w0.double().mean(0), atol=3e-3, rtol=0)
        torch.testing.assert_close(w[v.offset:].double().std(0), 0.1 * w0.double().std(0), rtol=0.1, atol=0)
    assert m.config.text_config.vocab_size == v.stop
