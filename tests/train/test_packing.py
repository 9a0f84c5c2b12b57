"""Sequence packing: layout, block-diagonal masks, cu_seqlens, and a tiny transformers Qwen2 giving
the same per-sample losses packed and unpacked (float64)."""
import importlib
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from beingh0.core.errors import UserValueError
from beingh0.train.packing import IGNORE_INDEX, attention_implementation, pack_sequences, per_sample_losses

LENGTHS = [5, 3, 7, 2, 6, 4, 1]


def samples(vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, vocab, (n,), generator=g) for n in LENGTHS]


def test_pack_layout_positions_labels_and_masks():
    s = samples()
    p = pack_sequences(s, seq_len=8, pad_id=0)
    assert p.input_ids.shape == (4, 8)  # first fit: [5,3] [7,1] [2,6] [4 + pad]
    assert p.sample_index.tolist()[0] == [0] * 5 + [1] * 3
    assert p.sample_index.tolist()[1] == [2] * 7 + [6]
    assert p.sample_index.tolist()[3] == [5] * 4 + [-1] * 4
    assert p.position_ids.tolist()[0] == [0, 1, 2, 3, 4, 0, 1, 2]
    for i, x in enumerate(s):  # every sample lands whole, in order, with its first label ignored
        at = p.sample_index == i
        assert torch.equal(p.input_ids[at], x) and torch.equal(p.position_ids[at], torch.arange(len(x)))
        assert p.labels[at][0] == IGNORE_INDEX and torch.equal(p.labels[at][1:], x[1:])
    assert (p.labels[p.sample_index < 0] == IGNORE_INDEX).all()
    m = p.attention_mask_4d()
    assert m.shape == (4, 1, 8, 8) and m.dtype == torch.bool
    seg, L = p.segment_ids, 8
    for r in range(4):
        for i in range(L):
            for j in range(L):
                assert m[r, 0, i, j] == (seg[r, i] == seg[r, j] and j <= i)
    assert m.diagonal(dim1=-2, dim2=-1).all()  # no empty attention row, padding included
    add = p.attention_mask_4d(torch.float64)
    assert ((add == 0) == m).all() and (add[~m] == torch.finfo(torch.float64).min).all()
    cu, mx = p.cu_seqlens()
    assert cu.dtype == torch.int32 and mx == 7
    assert cu.tolist() == [0, 5, 8, 15, 16, 18, 24, 28, 32]


def test_pack_errors_and_dict_samples():
    with pytest.raises(UserValueError, match="sample 1 has 9 tokens"):
        pack_sequences([torch.ones(3), torch.ones(9)], seq_len=8)
    lab = torch.tensor([IGNORE_INDEX, IGNORE_INDEX, 7, 8])
    p = pack_sequences([{"input_ids": torch.tensor([1, 2, 7, 8]), "labels": lab}], seq_len=6)
    assert p.labels.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 7, 8, IGNORE_INDEX, IGNORE_INDEX]]


def test_cu_seqlens_varlen_attention_equals_the_block_mask():
    # what flash-attn's varlen kernel computes (causal attention inside each cu_seqlens segment of the
    # flattened rows), written with SDPA per segment, equals SDPA over the rows with the 4-D mask
    p = pack_sequences(samples(), seq_len=8)
    R, L, H, D = *p.input_ids.shape, 2, 4
    q, k, v = torch.randn(3, R, H, L, D, dtype=torch.float64).unbind(0)
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=p.attention_mask_4d())
    flat = lambda t: t.transpose(1, 2).reshape(R * L, H, D)  # (total, heads, dim): flash-attn's layout
    fq, fk, fv = flat(q), flat(k), flat(v)
    cu, _ = p.cu_seqlens()
    out = torch.empty_like(fq)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        out[a:b] = F.scaled_dot_product_attention(fq[a:b].transpose(0, 1), fk[a:b].transpose(0, 1),
                                                  fv[a:b].transpose(0, 1), is_causal=True).transpose(0, 1)
    torch.testing.assert_close(out, flat(masked), rtol=0, atol=1e-12)
    kw = p.flash_kwargs()
    assert kw["cu_seq_lens_q"] is kw["cu_seq_lens_k"] and kw["max_length_q"] == 7


def import_qwen2():
    """transformers' Qwen2 modules (skips where transformers is absent)."""
    pytest.importorskip("transformers")
    return importlib.import_module("transformers.models.qwen2.modeling_qwen2")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_qwen2_packed_and_unpacked_give_the_same_per_sample_losses(attn):
    transformers = import_qwen2()
    cfg = transformers.Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg).double().eval()
    s = samples()
    # unpacked: one sample per row, right padding, a 2-D padding mask
    L = max(LENGTHS)
    ids = torch.zeros(len(s), L, dtype=torch.long)
    att = torch.zeros(len(s), L, dtype=torch.long)
    for i, x in enumerate(s):
        ids[i, : len(x)], att[i, : len(x)] = x, 1
    labels = ids.masked_fill(att == 0, IGNORE_INDEX)
    rows = torch.arange(len(s))[:, None].expand(-1, L).masked_fill(att == 0, -1)
    with torch.no_grad():
        ref = per_sample_losses(model(input_ids=ids, attention_mask=att).logits, labels, rows, len(s))
        p = pack_sequences(s, seq_len=8)
        mask = p.attention_mask_4d() if attn == "sdpa" else p.attention_mask_4d(torch.float64)
        out = model(input_ids=p.input_ids, attention_mask=mask, position_ids=p.position_ids)
        got = per_sample_losses(out.logits, p.labels, p.sample_index, p.num_samples)
        # without the boundaries (plain causal attention over the row) the losses differ
        wrong = per_sample_losses(model(input_ids=p.input_ids).logits, p.labels, p.sample_index, p.num_samples)
    assert torch.isfinite(ref[:-1]).all() and torch.isnan(ref[-1])  # a 1-token sample has no target
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert not torch.allclose(wrong[:-1], ref[:-1], rtol=1e-6)


def test_attention_implementation_defaults_to_sdpa_on_cpu():
    assert attention_implementation("cpu") == "sdpa"
