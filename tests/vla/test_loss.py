"""pretrain_loss: logit masking and loss filtering against a direct float64 reference; the model path
(hidden states -> head) against transformers' own loss; the DDP/FSDP-safe wrapper."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from beingh0.core.errors import UserError
from beingh0.ops.ce import fused_linear_cross_entropy, masked_ce_loss, motion_restrict
from beingh0.vla.loss import LossConfig, PretrainModel, pretrain_loss

from .conftest import random_motion


def _direct(hidden, weight, targets, restrict, lo, hi, filt):
    """Loop-by-loop reference: log-softmax over the allowed logits, percentile bounds by numpy's linear
    quantile, inclusive (the op's documented filtering rule)."""
    losses = []
    for i in range(hidden.shape[0]):
        if targets[i] == -100:
            continue
        z = weight @ hidden[i]
        if restrict is not None and restrict[i]:
            z = torch.where((torch.arange(len(z)) >= lo) & (torch.arange(len(z)) < hi), z, torch.tensor(-np.inf, dtype=z.dtype))
        losses.append(torch.logsumexp(z, 0) - z[targets[i]])
    L = torch.stack(losses)
    if filt is None:
        return L.mean(), len(L)
    v = L.detach().numpy()
    a, b = np.quantile(v, filt[0] / 100), np.quantile(v, filt[1] / 100)
    k = (L.detach().numpy() >= a) & (L.detach().numpy() <= b)
    return L[torch.from_numpy(k)].mean(), int(k.sum())


@pytest.mark.parametrize("p,filt", [(0.0, None), (1.0, None), (0.5, None), (0.5, (10.0, 90.0)), (1.0, (0.0, 100.0)),
                                    (0.0, (40.0, 60.0)), (0.3, (0.0, 25.0)), (0.3, (95.0, 100.0))])
def test_masking_and_filtering_match_direct_reference(p, filt):
    g = torch.Generator().manual_seed(0)
    N, H, V, lo, hi = 40, 8, 30, 20, 28
    hidden = torch.randn(N, H, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (N,), generator=g)
    targets[::7] = -100
    targets[1::3] = torch.randint(lo, hi, targets[1::3].shape, generator=g)  # plenty of motion labels
    restrict = motion_restrict(targets, (lo, hi), p, torch.Generator().manual_seed(1))
    if p == 0:
        assert not restrict.any()
    if p == 1:
        assert torch.equal(restrict, (targets >= lo) & (targets < hi))
    per = fused_linear_cross_entropy(hidden, weight, targets, restrict=restrict, restrict_range=(lo, hi))
    loss, n = masked_ce_loss(per, targets, filt)
    ref, n_ref = _direct(hidden, weight, targets, restrict, lo, hi, filt)
    assert int(n) == n_ref and n_ref >= 1
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    gh, gw = torch.autograd.grad(loss, (hidden, weight))
    rh, rw = torch.autograd.grad(ref, (hidden, weight))
    torch.testing.assert_close(gh, rh, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw, rw, rtol=1e-10, atol=1e-12)


def test_mask_draw_rate_and_ignored_positions():
    t = torch.full((20000,), 5)
    t[::2] = -100
    r = motion_restrict(t, (0, 10), 0.25, torch.Generator().manual_seed(0))
    assert not r[::2].any()
    assert abs(r[1::2].float().mean().item() - 0.25) < 0.02
    # the mean is over targets only: padding never dilutes it
    per = torch.arange(6, dtype=torch.float64)
    tg = torch.tensor([1, -100, 1, -100, -100, 1])
    loss, n = masked_ce_loss(per, tg)
    assert int(n) == 3 and loss.item() == pytest.approx((0 + 2 + 5) / 3)


def test_config_checks():
    with pytest.raises(UserError):
        LossConfig(mask_prob=1.5)
    with pytest.raises(UserError):
        LossConfig(filter_low=60, filter_high=40)
    assert LossConfig().filter is None and LossConfig(filter_low=5).filter == (5, 100)


@pytest.fixture(scope="module")
def model_and_batch(tiny_vla):

    vla = tiny_vla
    proc = vla.processor()
    lay = vla.vocab.layout
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    items = [
        proc.build({"prompt": "<IMAGE>\nPick up the cup. Generate the motion of the left hand for 1 second.",
                    "response": "<MOTION:left:0-1s>"}, image=img, motion={"left": random_motion(lay, 1, 1)}),
        proc.build({"prompt": "<MOTION:right:0-1s>\nDescribe what the right hand does.", "response": "It grasps the red cup."},
                   motion={"right": random_motion(lay, 1, 2)}),
    ]
    return vla, proc.collate(items)


def test_model_path_equals_transformers_loss(model_and_batch):
    vla, batch = model_and_batch
    m = vla.model.eval()
    rng = (vla.vocab.offset, vla.vocab.offset + vla.vocab.num_motion)
    with torch.no_grad():
        ours, met = pretrain_loss(m, batch, LossConfig(), motion_range=rng)
        hf = m(**batch).loss
        logits = m(**{k: v for k, v in batch.items() if k != "labels"}).logits
    torch.testing.assert_close(ours, hf, rtol=1e-5, atol=1e-5)
    lab = batch["labels"][:, 1:]
    assert met["targets"] == met["label_tokens"] == int((lab != -100).sum())
    assert met["tokens"] == int(batch["attention_mask"].sum())
    motion = (lab >= rng[0]) & (lab < rng[1])
    assert met["motion_targets"] == int(motion.sum()) == vla.vocab.layout.tokens_per_block
    acc = (logits[:, :-1].argmax(-1)[motion] == lab[motion]).double().mean().item()
    assert met["motion_acc"] == pytest.approx(acc)
    # training mode with p = 1: every motion label sees only the motion logits
    m.train()
    try:
        with torch.no_grad():
            full, _ = pretrain_loss(m, batch, LossConfig(mask_prob=1.0), motion_range=rng)
    finally:
        m.eval()
    lg = logits[:, :-1].double()
    outside = torch.ones(lg.shape[-1], dtype=torch.bool)
    outside[rng[0]:rng[1]] = False
    lg = torch.where(motion[..., None] & outside, torch.tensor(-np.inf, dtype=lg.dtype), lg)
    ref = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lab.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(full.double(), ref, rtol=1e-5, atol=1e-5)
    assert full < hf  # restricting to the motion ids can only raise the target's probability


def test_wrapper_forward_and_gradients(model_and_batch):
    vla, batch = model_and_batch
    rng = (vla.vocab.offset, vla.vocab.offset + vla.vocab.num_motion)
    pm = PretrainModel(vla.model, LossConfig(mask_prob=0.0), rng)
    pm.zero_grad()
    loss, met = pm(batch)
    loss.backward()
    assert vla.model.lm_head.weight.grad is not None and vla.model.lm_head.weight.grad.abs().sum() > 0
    vla.model.zero_grad()
