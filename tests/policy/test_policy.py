"""The Being-H0 policy: normalisation in both paths, one prompt for training and serving, the action
queue, shapes, freezing, save/load, resume through beingh0.train.fit, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserFileError, UserValueError
from beingh0.policy.config import PolicyConfig
from beingh0.policy.data import PolicyCollator, PolicyDataset, split_episodes
from beingh0.policy.model import BeingH0Policy
from beingh0.policy.normalize import Normalizer, feature_stats

from .conftest import FakeRobot, make_policy


def _obs(item):
    return {k: item[k] for k in ("observation.state", "observation.images.front", "task")}


def _obs_batch(ds, i):
    """Dataset item ``i`` as a served batch of one, with its state history (B, H, S)."""
    it = ds.item(i)
    return {"observation.state": np.asarray(it["observation.state"])[None],
            "observation.images.front": np.asarray(it["observation.images.front"])[None], "task": [it["task"]]}


# ---------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("mode", ["mean_std", "min_max", "identity"])
def test_normalizer_matches_float64_reference_and_round_trips(mode):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5)) * [1, 10, 0.1, 5, 1] + [0, 3, -2, 100, 7]
    x[:, 4] = 7.0  # a constant dimension: centred, divided by 1
    st = feature_stats(x)
    n = Normalizer({"f": {"mode": mode, "stats": st}})
    y = n.normalize("f", torch.tensor(x, dtype=torch.float64))
    if mode == "mean_std":
        ref = (x - x.mean(0)) / np.where(x.std(0) < 1e-6, 1, x.std(0))
    elif mode == "min_max":
        span = (x.max(0) - x.min(0)) / 2
        ref = (x - (x.max(0) + x.min(0)) / 2) / np.where(span < 1e-6, 1, span)
        assert ref[:, :4].min() >= -1 - 1e-9 and ref[:, :4].max() <= 1 + 1e-9
    else:
        ref = x
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-5)
    if mode != "identity":
        assert np.all(np.abs(y.numpy()[:, 4]) < 1e-5)  # a constant dim is centred, not blown up
    np.testing.assert_allclose(n.unnormalize("f", y).numpy(), x, rtol=1e-6, atol=1e-4)


def test_normalizer_bad_inputs_are_one_line():
    with pytest.raises(UserValueError, match="not one of"):
        Normalizer({"f": {"mode": "zscore", "stats": feature_stats(np.ones((3, 2)))}})
    with pytest.raises(UserValueError, match="NaN"):
        feature_stats(np.array([[1.0, np.nan]]))


def test_normalisation_is_applied_in_training_and_inverted_at_inference(fake):
    """With a zero head the network outputs 0 in normalised units: serving must return the action mean
    (not 0), and training on actions equal to the mean must have zero loss (not |mean|). The state the
    proprio MLP sees must be the same normalised value in both paths."""
    pol = make_policy(fake, action_mode="absolute")
    assert pol.spec.delta_index is None
    torch.nn.init.zeros_(pol.head[2].weight)
    torch.nn.init.zeros_(pol.head[2].bias)
    mean_a = torch.tensor(pol.spec.norm["action"]["stats"]["mean"], dtype=torch.float32)
    assert mean_a.abs().min() > 40  # the fake actions sit around 56: an un-normalised path is far off
    seen = []
    pol.proprio.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    it = fake[5]
    ds = PolicyDataset(fake, pol.builder, [5])
    chunk = pol.predict_action_chunk(_obs_batch(ds, 0))[0]
    torch.testing.assert_close(chunk, mean_a.expand(4, -1), rtol=0, atol=1e-4)
    batch = PolicyCollator(pol.builder)([ds[0]])
    batch["action"] = mean_a.expand(1, 4, -1).clone()
    loss, m = pol(batch)
    assert float(loss.detach()) < 1e-5 and m["targets"] == 16
    torch.testing.assert_close(seen[0], seen[1])
    st = pol.spec.norm["observation.state"]["stats"]
    ref = (np.asarray(it["observation.state"], np.float64) - st["mean"]) / np.asarray(st["std"])
    np.testing.assert_allclose(seen[0][0, :4].numpy(), ref, rtol=1e-4, atol=1e-5)
    # state_history 2: then the normalised velocity state[5] - state[4], statistics over every frame's difference
    dst = pol.spec.norm["observation.state.delta"]["stats"]
    diffs = np.concatenate([np.diff(s.astype(np.float64), axis=0, prepend=s[:1]) for s in fake.states])
    np.testing.assert_allclose(dst["mean"], diffs.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dst["std"], diffs.std(0), rtol=1e-6)
    v = np.asarray(fake.states[0][5], np.float64) - fake.states[0][4]
    np.testing.assert_allclose(seen[0][0, 4:].numpy(), (v - diffs.mean(0)) / diffs.std(0), rtol=1e-4, atol=1e-5)


def test_delta_actions_add_the_state_back_and_train_on_the_difference(fake):
    """action_mode delta: statistics of action[t+k] - state[t] (float64 reference), a zero head serves
    state + mean difference, and training on exactly that has zero loss."""
    from beingh0.policy.model import delta_table

    pol = make_policy(fake, action_mode="delta")
    assert pol.spec.delta_index == [0, 1, 2, 3]
    eps = np.repeat(np.arange(3), 10)
    d = delta_table(fake.state_table(), fake.action_table(), np.arange(4), eps, 4)
    ref = [fake.actions[e][min(t + k, 9)] - fake.states[e][t] for k in range(4) for e in range(3) for t in range(10)]
    np.testing.assert_allclose(np.sort(d, 0), np.sort(np.asarray(ref, np.float64), 0), rtol=1e-6)
    torch.nn.init.zeros_(pol.head[2].weight)
    torch.nn.init.zeros_(pol.head[2].bias)
    mean_d = torch.tensor(pol.spec.norm["action"]["stats"]["mean"], dtype=torch.float32)
    it = fake[7]
    st = torch.as_tensor(it["observation.state"])
    torch.testing.assert_close(pol.predict_action_chunk(_obs(it)), (st + mean_d).expand(4, -1), rtol=0, atol=1e-4)
    batch = PolicyCollator(pol.builder)([PolicyDataset(fake, pol.builder, [7])[0]])
    batch["action"] = (st + mean_d).expand(1, 4, -1).clone()
    assert float(pol(batch)[0].detach()) < 1e-5
    with pytest.raises(UserValueError, match="delta"):
        from beingh0.policy.model import delta_index

        delta_index("delta", 4, 3)


# ---------------------------------------------------------------------------- one prompt
def test_training_and_serving_build_identical_inputs_and_predictions(fake, policy):
    ds = PolicyDataset(fake, policy.builder)
    assert policy.config.state_history == 2
    for i in (0, 13):  # two tasks of different text length; an episode's first frame and a later one
        train = PolicyCollator(policy.builder)([ds[i]])
        serve = policy.prepare(_obs_batch(ds, i))
        np.testing.assert_array_equal(train["observation.state"][0].numpy(), fake.state_table()[[max(i - 1, 10 * (i // 10)), i]])
        for k in ("input_ids", "attention_mask", "pixel_values", "observation.state"):
            assert torch.equal(train[k], serve[k]), k
        ids = serve["input_ids"][0]
        text = policy.vla.tokenizer.decode(ids[: -5])
        assert fake[i]["task"] in text and "<|im_start|>assistant" in text
        assert (ids == policy.image_token_id).sum() == 16  # one 64 px tile of the tiny VLA
        policy.eval()
        with torch.no_grad():
            a = policy.forward_core(train["pixel_values"], train["input_ids"], train["attention_mask"],
                                    train["observation.state"])
        torch.testing.assert_close(a[0], policy.predict_action_chunk(_obs_batch(ds, i))[0])
        if i == 0:  # no history before an episode's first frame: serving one state repeats it
            torch.testing.assert_close(a[0], policy.predict_action_chunk(_obs(fake[i])))


def test_left_padded_batch_matches_single_samples(fake, policy):
    obs = [_obs(fake[0]), _obs(fake[12])]
    assert obs[0]["task"] != obs[1]["task"]
    batched = {k: (np.stack([o[k] for o in obs]) if k != "task" else [o[k] for o in obs]) for k in obs[0]}
    out = policy.predict_action_chunk(batched)
    assert out.shape == (2, 4, 4)
    for b in range(2):
        torch.testing.assert_close(out[b], policy.predict_action_chunk(obs[b]), rtol=1e-4, atol=1e-4)


def test_lerobot_float_chw_images_equal_uint8(fake, policy):
    o = _obs(fake[3])
    f = dict(o, **{"observation.images.front": torch.from_numpy(o["observation.images.front"]).permute(2, 0, 1).float() / 255})
    torch.testing.assert_close(policy.predict_action_chunk(f), policy.predict_action_chunk(o))


# ---------------------------------------------------------------------------- API
def test_select_action_executes_n_steps_per_chunk_then_replans(fake, policy):
    calls = []
    real = policy.predict_action_chunk

    def counted(o):
        calls.append(1)
        return real(o)

    policy.predict_action_chunk = counted
    o = _obs(fake[2])
    chunk = real(o)
    acts = [policy.select_action(o) for _ in range(7)]
    assert len(calls) == 3  # n_action_steps=3: steps 0-2, 3-5, 6
    for j in range(3):
        torch.testing.assert_close(acts[j], chunk[j])
    torch.testing.assert_close(acts[3], chunk[0])  # same observation -> same new chunk
    policy.reset()
    policy.select_action(o)
    assert len(calls) == 4  # reset empties the queue


def test_history_index_stays_inside_episodes():
    from beingh0.policy.model import history_index

    eps = np.array([0, 0, 0, 0, 1, 1, 2])
    ref = [[max(t - h, first) for h in (2, 1, 0)] for t, first in zip(range(7), [0, 0, 0, 0, 4, 4, 6])]
    np.testing.assert_array_equal(history_index(7, eps, 3), ref)
    np.testing.assert_array_equal(history_index(3, None, 1), [[0], [1], [2]])


def test_select_action_records_the_state_history(fake, policy):
    """state_history 2: select_action keeps the previous observation's state; each new chunk is the one
    predict_action_chunk gives for the explicit (1, 2, S) history of the frame it is predicted at."""
    ds = PolicyDataset(fake, policy.builder)
    policy.reset()
    acts = [policy.select_action(_obs(fake[t])) for t in range(4)]  # chunks at frames 0 and 3 (n_action_steps 3)
    torch.testing.assert_close(acts[0], policy.predict_action_chunk(_obs_batch(ds, 0))[0, 0])
    torch.testing.assert_close(acts[3], policy.predict_action_chunk(_obs_batch(ds, 3))[0, 0])
    assert not torch.allclose(acts[3], policy.predict_action_chunk(_obs(fake[3]))[0], atol=1e-6)  # the history matters
    policy.reset()  # a new episode: no history carried over
    torch.testing.assert_close(policy.select_action(_obs(fake[3])), policy.predict_action_chunk(_obs(fake[3]))[0])


def test_single_state_token_is_the_paper_layout(fake):
    """state_history 1: items carry (S,) states, the proprio MLP sees S values, no difference statistics;
    training without histories on a state_history-2 policy is a one-line error."""
    pol = make_policy(fake, state_history=1)
    assert pol.proprio[0].in_features == 4 and "observation.state.delta" not in pol.spec.norm
    ds = PolicyDataset(fake, pol.builder)
    assert ds[3]["observation.state"].shape == (4,)
    b = PolicyCollator(pol.builder)([ds[3]])
    torch.testing.assert_close(pol.forward_core(b["pixel_values"], b["input_ids"], b["attention_mask"],
                                                b["observation.state"])[0], pol.predict_action_chunk(_obs(fake[3])))
    pol2 = make_policy(fake)
    with pytest.raises(UserValueError, match="state_history 2 needs"):
        pol2(b)
    with pytest.raises(UserValueError, match="observation.state.delta"):
        BeingH0Policy(pol.vla, PolicyConfig(chunk=4, num_queries=4, n_action_steps=3), pol.spec)


@pytest.mark.parametrize("to_queries", [True, False])
def test_state_embedding_enters_the_queries(fake, to_queries):
    """The language model's inputs end with [S] = proprio(state) and the queries, which also carry
    proprio(state) with state_to_queries (default) and are the bare learnable queries without."""
    pol = make_policy(fake, state_to_queries=to_queries)
    assert PolicyConfig().state_to_queries
    seen = []
    pol.backbone.model.language_model.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["inputs_embeds"].detach().clone()), with_kwargs=True)
    prop = []
    pol.proprio.register_forward_hook(lambda m, i, o: prop.append(o.detach().clone()))
    pol.predict_action_chunk(_obs(fake[4]))
    e, p = seen[0][0], prop[0][0]
    torch.testing.assert_close(e[-5], p)
    torch.testing.assert_close(e[-4:], pol.queries.detach() + (p if to_queries else 0))


@pytest.mark.parametrize("chunk,queries", [(8, 4), (6, 6)])
def test_chunk_shapes(chunk, queries):
    src = FakeRobot(episodes=1, length=4, chunk=chunk)
    pol = make_policy(src, chunk=chunk, num_queries=queries, n_action_steps=2)
    o = _obs(src[0])
    assert pol.predict_action_chunk(o).shape == (chunk, 4)
    assert pol.select_action(o).shape == (4,)
    b = {k: (np.stack([o[k]] * 3) if k != "task" else o[k]) for k in o}
    assert pol.predict_action_chunk(b).shape == (3, chunk, 4)
    assert pol.select_action(b).shape == (3, 4) if pol.reset() is None else False


def test_config_errors_are_one_line():
    for kw, msg in (({"chunk": 6, "num_queries": 4}, "multiple"), ({"n_action_steps": 20}, "n_action_steps"),
                    ({"freeze": "lm"}, "freeze")):
        with pytest.raises(UserValueError, match=msg) as e:
            PolicyConfig(**kw)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("freeze", ["none", "vision", "backbone"])
def test_freezing(fake, freeze):
    pol = make_policy(fake, freeze=freeze)
    batch = PolicyCollator(pol.builder)([PolicyDataset(fake, pol.builder)[i] for i in (0, 11)])
    loss, _ = pol(batch)
    loss.backward()
    vt = list(pol.backbone.model.vision_tower.parameters())
    lm = list(pol.backbone.model.language_model.parameters())
    ours = [*pol.proprio.parameters(), *pol.head.parameters(), pol.queries]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ours)
    assert all((p.grad is None) == (freeze != "none") for p in vt)
    assert all((p.grad is None) == (freeze == "backbone") for p in lm)
    assert pol.backbone.lm_head.weight.grad is None  # the unused output head never trains
    s = pol.trainable_summary()
    assert (s["vision_tower"][0] == 0) == (freeze != "none") and (s["language_model"][0] == 0) == (freeze == "backbone")


def test_bad_observations_are_one_line_errors(fake, policy):
    o = _obs(fake[0])
    bad = [({"observation.state": np.zeros(3, np.float32)}, "4 values"),
           ({"observation.images.front": None}, "front"),
           ({"observation.images.front": np.zeros((24, 32), np.uint8)}, "uint8 \\(H, W, 3\\)"),
           ({"task": 3}, "string")]
    for patch, msg in bad:
        with pytest.raises(UserValueError, match=msg) as e:
            policy.predict_action_chunk({**o, **patch})
        assert "\n" not in str(e.value)
    with pytest.raises(UserValueError, match="observation.state"):
        policy.predict_action_chunk({"observation.images.front": o["observation.images.front"]})


# ---------------------------------------------------------------------------- save / load
def test_save_and_load_round_trip(tmp_path, fake, policy):
    o = _obs(fake[4])
    with torch.no_grad():
        policy.head[2].bias.add_(0.5)  # not the init: the head's weights must travel
    ref = policy.predict_action_chunk(o)
    policy.save_pretrained(tmp_path / "p")
    back = BeingH0Policy.from_pretrained(tmp_path / "p")
    torch.testing.assert_close(back.predict_action_chunk(o), ref)
    assert back.spec.norm == policy.spec.norm and back.config == policy.config
    with pytest.raises(UserFileError, match="policy.json"):
        BeingH0Policy.from_pretrained(tmp_path)


def test_policies_saved_before_state_history_load_with_one_state(tmp_path, fake):
    import json

    pol = make_policy(fake, state_history=1, state_to_queries=False)
    pol.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p/policy.json").read_text())
    del meta["config"]["state_history"], meta["config"]["state_to_queries"]  # the file as written before the option existed
    (tmp_path / "p/policy.json").write_text(json.dumps(meta))
    back = BeingH0Policy.from_pretrained(tmp_path / "p")
    assert back.config.state_history == 1 and back.config.state_to_queries is False
    torch.testing.assert_close(back.predict_action_chunk(_obs(fake[4])), pol.predict_action_chunk(_obs(fake[4])))


# ---------------------------------------------------------------------------- episode split
def test_split_episodes_holds_out_the_last_episodes():
    ep = np.repeat([0, 1, 2, 3], 5)
    tr, va, te, ve = split_episodes(ep, 0.25)
    assert te == [0, 1, 2] and ve == [3] and set(ep[va]) == {3} and len(tr) == 15
    tr, va, te, ve = split_episodes(np.zeros(5, np.int64), 0.25)
    assert ve == [] and len(va) == 0 and len(tr) == 5  # one episode: nothing to hold out


def test_known_intrinsics_fold_the_alignment_into_the_tiling(fake, policy):
    """A camera with intrinsics is warped to Being-H0's virtual camera (one warp_align pass, as in
    pretraining); without, a plain resize; the observation's own intrinsics win over the spec's."""
    from beingh0.align.camera import OFFICIAL_TARGET, Intrinsics
    from beingh0.align.geometry import frame_from_src_matrix
    from beingh0.policy.prompt import PromptBuilder

    img = fake[0]["observation.images.front"]
    proc = policy.builder.proc
    k = (40.0, 40.0, 16.0, 12.0)
    b = PromptBuilder(proc, ["front"], {"front": (*k, 32, 24)}, num_queries=4)
    tgt = OFFICIAL_TARGET.frame
    ref = proc.pixel_values(img, frame_from_src_matrix(Intrinsics(*k, 32, 24), tgt), (tgt.width, tgt.height))
    pv, _ = b.pixel_values({"observation.images.front": img})
    torch.testing.assert_close(pv, ref)
    plain, _ = policy.builder.pixel_values({"observation.images.front": img})
    torch.testing.assert_close(plain, proc.pixel_values(img))
    assert not torch.allclose(pv, plain)
    k2 = (20.0, 20.0, 16.0, 12.0)
    own, _ = b.pixel_values({"observation.images.front": img, "intrinsics.observation.images.front": np.array(k2)})
    torch.testing.assert_close(own, proc.pixel_values(img, frame_from_src_matrix(Intrinsics(*k2, 32, 24), tgt),
                                                      (tgt.width, tgt.height)))
    with pytest.raises(UserValueError, match="intrinsics are for 32x24"):
        b.pixel_values({"observation.images.front": np.zeros((48, 64, 3), np.uint8)})
