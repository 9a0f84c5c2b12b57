"""Grouped residual VQ: the code search against brute force, EMA/k-means/restart behaviour, stats."""
import pytest
import torch

from beingh0.tokenizer.quantizer import GroupedResidualVQ, code_stats, lookup_codes, quantize_indices


def brute_force(x, codebooks):
    """Per vector, per group, per layer: every distance written out, first minimum."""
    G, L, K, Dg = codebooks.shape
    N = x.shape[0]
    codes = torch.empty(N, G, L, dtype=torch.int64)
    for n in range(N):
        for g in range(G):
            r = x[n, g * Dg:(g + 1) * Dg].clone()
            for layer in range(L):
                d = torch.stack([((r - codebooks[g, layer, k]) ** 2).sum() for k in range(K)])
                best = int(torch.nonzero(d == d.min())[0])
                codes[n, g, layer] = best
                r = r - codebooks[g, layer, best]
    return codes


@pytest.mark.parametrize("N,G,L,K,Dg", [(37, 3, 4, 13, 5), (1, 1, 1, 1, 1), (8, 2, 8, 16, 7)])
def test_quantize_indices_matches_brute_force(N, G, L, K, Dg):
    g = torch.Generator().manual_seed(N * 100 + K)
    x = torch.randn(N, G * Dg, generator=g, dtype=torch.float64)
    cb = torch.randn(G, L, K, Dg, generator=g, dtype=torch.float64) / (torch.arange(L, dtype=torch.float64) + 1)[None, :, None, None]
    codes = quantize_indices(x, cb)
    assert codes.shape == (N, G, L) and codes.dtype == torch.int64
    torch.testing.assert_close(codes, brute_force(x, cb), rtol=0, atol=0)
    # float32: the same codes except where two distances tie within rounding (none for these inputs)
    torch.testing.assert_close(quantize_indices(x.float(), cb.float()), codes, rtol=0, atol=0)


def test_quantize_indices_ties_go_to_lowest_index():
    cb = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    cb[:, :, 4] = cb[:, :, 1]                              # duplicates: 1 must win over 4
    x = torch.cat([cb[0, 0, 4], cb[1, 0, 4]])[None]        # exactly on the duplicated code
    codes = quantize_indices(x, cb)
    assert codes[0, :, 0].tolist() == [1, 1]


def test_lookup_and_decode_reconstruct_the_residual_sum():
    q = GroupedResidualVQ(2, 3, 8, 4, kmeans_init=False)
    x = torch.randn(10, 8)
    codes = q.encode(x)
    per = lookup_codes(codes, q.codebooks)
    assert per.shape == (10, 2, 3, 4)
    torch.testing.assert_close(q.decode(codes), per.sum(2).reshape(10, 8))


def test_quantize_indices_errors():
    cb = torch.randn(2, 2, 4, 3)
    with pytest.raises(ValueError, match=r"\(N, G\*Dg\) = \(N, 6\)"):
        quantize_indices(torch.randn(5, 7), cb)
    with pytest.raises(TypeError, match="share one floating dtype"):
        quantize_indices(torch.randn(5, 6, dtype=torch.float64), cb)
    with pytest.raises(ValueError, match=r"\(G, L, K, Dg\)"):
        quantize_indices(torch.randn(5, 6), cb[0])
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 4\)"):
        lookup_codes(torch.full((1, 2, 2), 4, dtype=torch.int64), cb)


def test_kmeans_init_and_ema_reduce_quantization_error():
    torch.manual_seed(0)
    centres = torch.randn(12, 6) * 3
    data = lambda n: centres[torch.randint(0, 12, (n,))] + 0.05 * torch.randn(n, 6)
    q = GroupedResidualVQ(2, 2, 16, 3, ema_decay=0.8, kmeans_init=True, kmeans_iters=8, restart_after=0)
    x = data(512)
    before = (q.decode(q.encode(x)) - x).pow(2).mean()              # random codebooks
    q.train()
    out, codes, commit = q(x)
    assert bool(q.initialized)
    q.update()
    after = (q.decode(q.encode(x)) - x).pow(2).mean()
    assert after < 0.05 * before
    for _ in range(5):
        q(data(512))
        q.update()
    assert (q.decode(q.encode(x)) - x).pow(2).mean() < 0.02
    assert commit.item() > 0


def test_straight_through_gradient_and_commitment():
    q = GroupedResidualVQ(1, 2, 4, 3, kmeans_init=False).eval()
    x = torch.randn(5, 3, requires_grad=True)
    out, codes, commit = q(x)
    torch.testing.assert_close(out.detach(), q.decode(codes))
    torch.testing.assert_close(commit, ((x - q.decode(codes)) ** 2).mean())
    (out * torch.arange(15.0).reshape(5, 3)).sum().backward()
    torch.testing.assert_close(x.grad, torch.arange(15.0).reshape(5, 3))       # identity through the quantizer


def test_dead_code_restart_revives_unused_codes():
    torch.manual_seed(1)
    q = GroupedResidualVQ(1, 1, 32, 4, kmeans_init=False, restart_after=3, ema_decay=0.9).train()
    q.codebooks.mul_(100.0)                       # codes far away from the data: almost all unused
    q.ema_sum.copy_(q.codebooks)
    x = torch.randn(256, 4)
    for _ in range(4):
        q(x)
        assert q.update()
    assert int(q.restarts.sum()) > 0
    util, _ = code_stats(torch.bincount(q.encode(x).flatten(), minlength=32)[None])
    assert util.item() > 0.5


def test_code_stats():
    util, perp = code_stats(torch.tensor([[5, 5, 5, 5], [20, 0, 0, 0]]))
    torch.testing.assert_close(util, torch.tensor([1.0, 0.25], dtype=torch.float64))
    torch.testing.assert_close(perp, torch.tensor([4.0, 1.0], dtype=torch.float64))


def test_inference_encode_reuses_prepared_codebooks_until_they_change():
    q = GroupedResidualVQ(2, 3, 16, 4, kmeans_init=False).eval()
    x = torch.randn(40, 8)
    ref = quantize_indices(x, q.codebooks, backend="reference")
    assert torch.equal(q.encode(x), ref)
    p = q.prepared()
    assert q.prepared() is p                               # cached
    _, codes, _ = q(x)                                     # eval forward takes the same path
    assert torch.equal(codes, ref)
    q.train()
    q(x)
    q.update()                                             # a training step updates the codebooks in place
    assert q.prepared() is not p
    q.eval()
    assert torch.equal(q.encode(x), quantize_indices(x, q.codebooks, backend="reference"))
    q.load_state_dict({**q.state_dict(), "codebooks": torch.randn(2, 3, 16, 4)})
    assert torch.equal(q.encode(x), quantize_indices(x, q.codebooks, backend="reference"))


def _trained_state(q):
    return {k: v.clone() for k, v in q.state_dict().items()}


def test_statistics_of_micro_batches_add_up_to_one_update():
    # accumulation: two recorded forwards and one update() = one forward over both halves
    torch.manual_seed(0)
    x = torch.randn(64, 6, dtype=torch.float64)
    make = lambda: GroupedResidualVQ(2, 2, 8, 3, kmeans_init=False, restart_after=0, ema_decay=0.7).double().train()
    torch.manual_seed(1)
    a, b = make(), make()
    b.load_state_dict(a.state_dict())
    a(x)
    assert a.update() and not a.update()             # applied once, then nothing pending
    b(x[:40])
    b(x[40:])
    b.update()
    for k, v in _trained_state(a).items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=1e-12, atol=1e-12, msg=k)
    assert int(a.step) == 1


def _make_sparse_vq():
    torch.manual_seed(0)
    q = GroupedResidualVQ(2, 2, 8, 3, kmeans_init=False, restart_after=2, ema_decay=0.7).double().train()
    q.codebooks.mul_(3.0)                            # some codes stay unused: restarts happen
    q.ema_sum.copy_(q.codebooks)
    return q


@pytest.mark.slow
def test_update_under_torch_distributed_sums_statistics_and_keeps_ranks_identical(tmp_path):
    # 2 gloo ranks with half the batch each. Step 1 (no code dead yet): both ranks hold exactly the
    # one-process update over the whole batch (the counts and sums were all-reduced). Step 3, after
    # restarts drawn differently per rank: rank 0's codebooks were broadcast, the ranks agree.
    import os
    import subprocess
    import sys
    from pathlib import Path

    x = torch.randn(48, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    state = _trained_state(_make_sparse_vq())
    torch.save({"x": x, "state": state}, tmp_path / "inputs.pt")
    worker = Path(__file__).resolve().with_name("ddp_update_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path / "inputs.pt"), str(tmp_path / "st")]
    r = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = {(r, s): torch.load(tmp_path / f"st.{r}.{s}", weights_only=True) for r in (0, 1) for s in (1, 3)}
    one = _make_sparse_vq()
    one(x)
    one.update()
    for k in ("codebooks", "ema_sum", "ema_count", "last_used", "usage"):
        for r in (0, 1):
            torch.testing.assert_close(got[r, 1][k], one.state_dict()[k], rtol=1e-12, atol=1e-12, msg=k)
    for k in ("codebooks", "ema_sum", "ema_count", "last_used", "restarts"):
        torch.testing.assert_close(got[1, 3][k], got[0, 3][k], rtol=0, atol=0, msg=k)
    assert int(got[0, 3]["restarts"].sum()) > 0
