"""The Being-H0 post-training policy (paper section 4.3): the VLA as encoder, a proprioception token,
learnable action queries and an MLP head trained with L1 on demonstrations.

Sequence (one prompt builder for training and serving, :mod:`.prompt`)::

    [chat prompt: system, camera tiles, instruction, assistant header] [S] [Q1 ... Qk]

``[S]`` = 2-layer MLP(normalised ``observation.state`` and, with ``state_history`` > 1, the normalised
differences to the previous states), ``[Qi]`` = learnable query embeddings (+ the ``[S]`` embedding with
``state_to_queries``; both options are deviations from the paper, see docs/policy.md); they enter
through ``inputs_embeds`` (image features are scattered into the ``<IMG_CONTEXT>`` positions as
InternVL does); the language model's last hidden states at the query positions go through a 2-layer
MLP head to ``chunk / k`` actions each -> the (chunk, action_dim) chunk, in normalised units; the
:class:`~.normalize.Normalizer` inverts it. Loss: L1 in normalised units, masked by ``action_is_pad``.

What trains (``PolicyConfig.freeze``): by default everything -- VLA (vision tower, projector,
language model), proprioception MLP, queries, head -- as in the paper's objective (its parameter set
includes the foundation VLA); ``vision`` keeps the vision tower as pretrained, ``backbone`` the whole
VLA. The VLA's output head (``lm_head``) is never used and never trains.

Export: :meth:`BeingH0Policy.forward_core` is tensor-only (``pixel_values, input_ids, attention_mask,
state -> actions`` in dataset units, normalisation inside) with a fixed slot layout (left padding:
the slots are the last ``1 + num_queries`` positions) and no Python branching on data.
"""
from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import UserFileError, UserValueError
from .config import PolicyConfig
from .normalize import Normalizer, feature_stats
from .prompt import PromptBuilder

__all__ = ["POLICY_FILE", "WEIGHTS_FILE", "BeingH0Policy", "PolicySpec", "policy_l1"]

POLICY_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
FORMAT_VERSION = 1
STATE, ACTION = "observation.state", "action"
STATE_DELTA = "observation.state.delta"
"""Normalisation key of the state differences ``state[t] - state[t-h]``, h = 1 .. state_history - 1."""


@dataclass
class PolicySpec:
    """What the training data decides: dimensions, names, cameras (+ intrinsics), fps, normalisation."""

    state_dim: int
    action_dim: int
    cameras: tuple = ()
    state_names: list | None = None
    action_names: list | None = None
    intrinsics: dict = field(default_factory=dict)
    """``{cam: [fx, fy, cx, cy, width, height]}`` for cameras with known intrinsics."""
    fps: float | None = None
    norm: dict = field(default_factory=dict)
    """``{"observation.state": {"mode", "stats", "dim"}, "action": {...}}`` (:class:`.normalize.Normalizer`);
    with ``delta_index`` the action statistics are those of action - state."""
    delta_index: list | None = None
    """Delta actions: for each action dimension the state dimension subtracted (None: absolute actions)."""

    @classmethod
    def from_tables(cls, states, actions, cameras, config: PolicyConfig, *, state_names=None, action_names=None,
                    intrinsics=None, fps=None, episodes=None) -> PolicySpec:
        """A spec whose normalisation statistics come from the training data's (N, S) and (N, A) tables
        (rows in frame order; ``episodes``: the episode of each row, for delta statistics over the chunk)."""
        s, a = np.asarray(states, np.float64), np.asarray(actions, np.float64)
        idx = delta_index(config.action_mode, s.shape[1], a.shape[1], state_names, action_names)
        a_stats = feature_stats(a if idx is None else delta_table(s, a, idx, episodes, config.chunk))
        norm = {STATE: {"mode": config.state_norm, "stats": feature_stats(s), "dim": int(s.shape[1])},
                ACTION: {"mode": config.action_norm, "stats": a_stats, "dim": int(a.shape[1])}}
        H = config.state_history
        if H > 1:
            hist = s[history_index(len(s), episodes, H)]  # (N, H, S)
            diffs = state_differences(torch.from_numpy(hist)).numpy()
            norm[STATE_DELTA] = {"mode": config.state_norm, "stats": feature_stats(diffs), "dim": int(s.shape[1]) * (H - 1)}
        return cls(int(s.shape[1]), int(a.shape[1]), tuple(cameras), state_names, action_names,
                   {k: list(v) for k, v in (intrinsics or {}).items() if v is not None}, fps, norm,
                   None if idx is None else [int(i) for i in idx])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PolicySpec:
        d = dict(d)
        d["cameras"] = tuple(d.get("cameras", ()))
        return cls(**d)


def delta_index(mode: str, state_dim: int, action_dim: int, state_names=None, action_names=None) -> np.ndarray | None:
    """The state dimension of each action dimension for delta actions, or None (absolute actions)."""
    idx = None
    if state_names and action_names:
        pos = {n: i for i, n in enumerate(state_names)}
        if all(n in pos for n in action_names):
            idx = np.asarray([pos[n] for n in action_names])
    elif state_dim == action_dim:
        idx = np.arange(action_dim)
    if mode == "delta" and idx is None:
        raise UserValueError("action_mode delta needs a state dimension for every action dimension (same names, or equal "
                             f"dimensions without names); got state {state_dim}, action {action_dim}: use absolute")
    return None if mode == "absolute" else idx


def delta_table(states: np.ndarray, actions: np.ndarray, idx, episodes=None, chunk: int = 1) -> np.ndarray:
    """Rows ``action[t + k] - state[t][idx]`` for k in 0..chunk-1 within each episode (the chunk's targets)."""
    ep = np.zeros(len(states), np.int64) if episodes is None else np.asarray(episodes)
    t = np.arange(len(states))
    ends = np.empty_like(t)
    cut = np.flatnonzero(np.diff(ep)) + 1
    for a, b in zip(np.concatenate([[0], cut]), np.concatenate([cut, [len(t)]])):
        ends[a:b] = b - 1
    rows = [actions[np.minimum(t + k, ends)] - states[:, idx] for k in range(max(1, chunk))]
    return np.concatenate(rows)


def history_index(n: int, episodes=None, history: int = 2) -> np.ndarray:
    """(n, history) row indices of each row's last ``history`` frames (oldest first, the row itself last),
    within its episode (rows in frame order); before an episode's first frame, its first frame repeats."""
    ep = np.zeros(n, np.int64) if episodes is None else np.asarray(episodes)
    t = np.arange(n)
    first = np.zeros(n, np.int64)
    cut = np.flatnonzero(np.diff(ep)) + 1
    for a, b in zip(np.concatenate([[0], cut]), np.concatenate([cut, [n]])):
        first[a:b] = a
    return np.maximum(t[:, None] - np.arange(history - 1, -1, -1)[None], first[:, None])


def state_differences(hist: torch.Tensor) -> torch.Tensor:
    """(..., H, S) state histories -> (..., (H-1) S): ``state[t] - state[t-h]`` for h = 1 .. H-1."""
    H = hist.shape[-2]
    cur = hist[..., -1, :]
    return torch.cat([cur - hist[..., H - 1 - h, :] for h in range(1, H)], -1)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Linear(h, o))


def policy_l1(pred: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean L1 over the valid (step, dimension) entries, and their count."""
    err = (pred - target).abs()
    if is_pad is None:
        return err.mean(), torch.tensor(float(err.numel()))
    valid = (~is_pad.bool()).unsqueeze(-1).to(err.dtype).expand_as(err)
    n = valid.sum()
    return (err * valid).sum() / n.clamp(min=1), n


class BeingH0Policy(nn.Module):
    """The post-training policy with a LeRobot-style API (``select_action``, ``predict_action_chunk``, ``reset``).

    Build with :meth:`from_vla` (a :class:`beingh0.vla.VLA` + config + spec) or load with
    :meth:`from_pretrained`. Observations follow LeRobot's keys: ``observation.state`` (S,) or (B, S),
    ``observation.images.<cam>`` uint8 (H, W, 3) / float (3, H, W) in [0, 1] (or batched), ``task`` (str
    or list of str, optional).
    """

    name = "beingh0"

    def __init__(self, vla, config: PolicyConfig, spec: PolicySpec, *, seed: int = 0):
        super().__init__()
        self.vla, self.config, self.spec = vla, config, spec
        self.backbone = vla.model
        hidden = int(vla.config.text_config.hidden_size)
        S, A = spec.state_dim, spec.action_dim
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(seed)
            self.proprio = _mlp(S * config.state_history, config.proj_hidden or hidden, hidden)
            self.queries = nn.Parameter(torch.randn(config.num_queries, hidden) * 0.02)
            self.head = _mlp(hidden, config.head_hidden or hidden, config.actions_per_query * A)
        self.proprio.to(vla.model.dtype), self.head.to(vla.model.dtype)
        self.queries.data = self.queries.data.to(vla.model.dtype)
        self.normalizer = Normalizer(spec.norm)
        for k, d in ((STATE, S), (ACTION, A)):
            if self.normalizer.features.get(k, {}).get("dim") != d:
                raise UserValueError(f"the spec's {k} normalisation has {self.normalizer.features.get(k, {}).get('dim')} "
                                     f"dimensions but the policy {d}")
        if config.state_history > 1 and self.normalizer.features.get(STATE_DELTA, {}).get("dim") != S * (config.state_history - 1):
            raise UserValueError(f"state_history {config.state_history} needs {STATE_DELTA!r} statistics of "
                                 f"{S * (config.state_history - 1)} dimensions in the spec; build the spec with the same config")
        di = torch.as_tensor(spec.delta_index if spec.delta_index is not None else [], dtype=torch.long)
        self.register_buffer("delta_index", di, persistent=False)
        self.delta = spec.delta_index is not None
        self.builder = PromptBuilder(vla.processor(), spec.cameras, spec.intrinsics, config.num_queries, config.align,
                                    config.state_history)
        self.image_token_id = int(vla.config.image_token_id)
        self.apply_freeze()
        self._queue: deque = deque()
        self._states: deque = deque()

    @classmethod
    def from_vla(cls, vla, config: PolicyConfig, spec: PolicySpec, *, seed: int = 0) -> BeingH0Policy:
        return cls(vla, config, spec, seed=seed)

    # ------------------------------------------------------------------------------ freezing
    def apply_freeze(self) -> None:
        """Set ``requires_grad`` per :attr:`PolicyConfig.freeze` (the unused ``lm_head`` never trains)."""
        bb = self.backbone
        for p in bb.parameters():
            p.requires_grad_(self.config.freeze != "backbone")
        if self.config.freeze == "vision":
            for p in bb.model.vision_tower.parameters():
                p.requires_grad_(False)
        head = bb.get_output_embeddings()
        if head is not None and head.weight is not bb.get_input_embeddings().weight:
            head.weight.requires_grad_(False)

    def trainable_summary(self) -> dict:
        """Trainable / total parameters per part."""
        bb = self.backbone.model
        parts = {"vision_tower": bb.vision_tower, "mm_projector": bb.multi_modal_projector,
                 "language_model": bb.language_model, "proprio": self.proprio, "head": self.head}
        out = {k: [sum(p.numel() for p in m.parameters() if p.requires_grad), sum(p.numel() for p in m.parameters())]
               for k, m in parts.items()}
        out["queries"] = [self.queries.numel() if self.queries.requires_grad else 0, self.queries.numel()]
        return out

    # ------------------------------------------------------------------------------ forward
    def forward_normalized(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           state_n: torch.Tensor) -> torch.Tensor:
        """(B, chunk, A) normalised actions from normalised state; the slots are the last 1 + k positions."""
        bb = self.backbone.model
        cfg = self.backbone.config
        embeds = bb.get_input_embeddings()(input_ids)
        feats = bb.get_image_features(pixel_values=pixel_values.to(embeds.dtype), vision_feature_layer=cfg.vision_feature_layer,
                                      vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                                      return_dict=True).pooler_output
        img = input_ids == self.image_token_id
        idx = (img.reshape(-1).float().cumsum(0) - 1).clamp(min=0).long()
        g = feats.to(embeds.dtype).reshape(-1, embeds.shape[-1])[idx].reshape(embeds.shape)
        embeds = torch.where(img.unsqueeze(-1), g, embeds)
        B, k = input_ids.shape[0], self.queries.shape[0]
        prop = self.proprio(state_n.to(embeds.dtype)).unsqueeze(1)
        q = self.queries.to(embeds.dtype).unsqueeze(0).expand(B, -1, -1)
        if self.config.state_to_queries:  # the state embedding also enters every query's residual stream
            q = q + prop
        embeds = torch.cat([embeds[:, : embeds.shape[1] - 1 - k], prop, q], dim=1)
        position_ids = (attention_mask.float().cumsum(-1) - 1).clamp(min=0).long()
        hidden = bb.language_model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                   use_cache=False).last_hidden_state
        out = self.head(hidden[:, -k:])
        return out.reshape(B, self.config.chunk, self.spec.action_dim)

    def proprio_input(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw states (B, S) or histories (B, H, S) -> (the proprio MLP's input, the current state (B, S)):
        the normalised current state, then (state_history > 1) the normalised differences to the
        previous frames. Shape-only branching (fixed per policy and input layout)."""
        hist = self.builder.states(state.float())
        cur = hist if hist.dim() == 2 else hist[:, -1]
        parts = [self.normalizer.normalize(STATE, cur)]
        if hist.dim() == 3:
            parts.append(self.normalizer.normalize(STATE_DELTA, state_differences(hist)))
        return torch.cat(parts, -1), cur

    def forward_core(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     state: torch.Tensor) -> torch.Tensor:
        """Tensor-only policy forward for export: tiles + ids + mask + raw state (B, S) or state history
        (B, state_history, S), oldest first -> (B, chunk, A) actions in the dataset's units
        (normalisation and its inverse inside)."""
        state_n, cur = self.proprio_input(state)
        out = self.normalizer.unnormalize(ACTION, self.forward_normalized(pixel_values, input_ids, attention_mask, state_n).float())
        if self.delta:  # fixed per policy (not data-dependent): delta actions get the state back
            out = out + cur.index_select(-1, self.delta_index).unsqueeze(1)
        return out

    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict]:
        """Training: ``(loss, metrics)`` for a collated batch (:class:`.data.PolicyDataset`): L1 between the
        prediction and the **normalised** recorded actions, masked by ``action_is_pad``."""
        state = batch[STATE].float()
        if self.config.state_history > 1 and state.dim() != 3:
            raise UserValueError(f"the training batch's {STATE} has shape {tuple(state.shape)}; state_history "
                                 f"{self.config.state_history} needs (B, H, S) histories (build the items with PolicyDataset)")
        state_n, cur = self.proprio_input(state)
        action = batch[ACTION].float()
        if self.delta:
            action = action - cur.index_select(-1, self.delta_index).unsqueeze(1)
        target = self.normalizer.normalize(ACTION, action)
        pred = self.forward_normalized(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], state_n)
        loss, n = policy_l1(pred.float(), target, batch.get("action_is_pad"))
        return loss, {"targets": float(n), "tokens": float(batch["attention_mask"].sum())}

    # ------------------------------------------------------------------------------ serving
    def _device(self) -> torch.device:
        return self.queries.device

    def prepare(self, observation: Mapping[str, Any]) -> dict:
        """A LeRobot-style observation (single or batched) -> the model's batch, through the same
        :class:`.prompt.PromptBuilder` as training."""
        if STATE not in observation:
            raise UserValueError(f"observation has no {STATE!r} (keys: {sorted(observation)})")
        state = torch.as_tensor(np.asarray(observation[STATE].cpu() if isinstance(observation[STATE], torch.Tensor)
                                           else observation[STATE], dtype=np.float32))
        single = state.dim() == 1
        state = state.reshape(1, -1) if single else state
        if state.dim() not in (2, 3) or state.shape[-1] != self.spec.state_dim or 0 in state.shape:
            raise UserValueError(f"observation.state must have {self.spec.state_dim} values (or (B, {self.spec.state_dim}), "
                                 f"or histories (B, H, {self.spec.state_dim}) oldest first), got shape {tuple(np.shape(observation[STATE]))}")
        B = state.shape[0]
        task = observation.get("task")
        tasks = [task] * B if (task is None or isinstance(task, str)) else task
        if not isinstance(tasks, (list, tuple)) or not all(t is None or isinstance(t, str) for t in tasks):
            raise UserValueError(f"observation['task'] must be a string or a list of strings, got {type(task).__name__}")
        if len(tasks) != B:
            raise UserValueError(f"observation has {B} states but {len(tasks)} task strings")
        items = []
        for b in range(B):
            imgs = {}
            for cam in self.spec.cameras:
                key = f"observation.images.{cam}"
                v = observation.get(key)
                if v is None:
                    raise UserValueError(f"observation has no {key!r}; the policy was trained with cameras {list(self.spec.cameras)}")
                imgs[key] = v if single else v[b]
                k4 = observation.get("intrinsics." + key)
                if k4 is not None:
                    imgs["intrinsics." + key] = k4 if np.ndim(k4) == 1 else k4[b]
            items.append(self.builder.encode(imgs, tasks[b] or self.config.instruction))
        batch = self.builder.collate(items)
        batch[STATE] = self.builder.states(state)
        dev = self._device()
        return {k: v.to(dev) for k, v in batch.items()}

    @torch.no_grad()
    def predict_action_chunk(self, observation: Mapping[str, Any]) -> torch.Tensor:
        """(B, chunk, A) actions in the dataset's units ((chunk, A) for an unbatched observation)."""
        single = np.ndim(observation.get(STATE, [])) == 1
        b = self.prepare(observation)
        was = self.training
        if was:  # dropout off (train()/eval() walk every module: only when needed)
            self.eval()
        try:
            out = self.forward_core(b["pixel_values"], b["input_ids"], b["attention_mask"], b[STATE])
        finally:
            if was:
                self.train(True)
        return out[0] if single else out

    @torch.no_grad()
    def select_action(self, observation: Mapping[str, Any]) -> torch.Tensor:
        """The next action ((A,) or (B, A)): a new chunk is predicted when the queue is empty and its
        first ``n_action_steps`` actions are queued (LeRobot's ACT/pi0 behaviour). With
        ``state_history`` > 1 every call records its ``observation.state`` (S,) / (B, S), and a chunk is
        predicted from the last ``state_history`` recorded states (LeRobot's observation queue; after
        :meth:`reset` the first state stands in for the missing ones)."""
        H = self.config.state_history
        if H > 1 and np.ndim(observation.get(STATE, [])) in (1, 2):
            st = observation[STATE]
            st = torch.as_tensor(np.asarray(st.cpu() if isinstance(st, torch.Tensor) else st, dtype=np.float32))
            single = st.dim() == 1
            st = st.reshape(1, -1) if single else st
            if self._states and self._states[-1].shape != st.shape:
                self._states.clear()  # another batch layout: a new episode
            self._states.append(st)
            while len(self._states) > H:
                self._states.popleft()
            if not self._queue:
                obs = {**observation, STATE: torch.stack(list(self._states), 1)}
                if single:  # a batch of one: the images get their batch axis too
                    for k, v in observation.items():
                        if k.startswith("observation.images."):
                            obs[k] = v.unsqueeze(0) if isinstance(v, torch.Tensor) else np.asarray(v)[None]
                chunk = self.predict_action_chunk(obs)
                chunk = chunk[0] if single else chunk
                self._queue.extend(chunk[..., : self.config.n_action_steps, :].unbind(-2))
            return self._queue.popleft()
        if not self._queue:
            chunk = self.predict_action_chunk(observation)
            steps = chunk[..., : self.config.n_action_steps, :]
            self._queue.extend(steps.unbind(-2))
        return self._queue.popleft()

    def reset(self) -> None:
        """Forget queued actions and recorded states (call at the start of an episode)."""
        self._queue.clear()
        self._states.clear()

    # ------------------------------------------------------------------------------ save / load
    def head_state_dict(self) -> dict:
        """The policy's own tensors (projector, queries, head, normaliser); the VLA saves itself."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def save_pretrained(self, path) -> Path:
        """``DIR/vla/`` (the VLA: safetensors + tokenizer), ``DIR/policy.safetensors``, ``DIR/policy.json``
        (config, spec with the normalisation statistics)."""
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        self.vla.save_pretrained(root / "vla")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head_state_dict().items()}, str(root / WEIGHTS_FILE))
        meta = {"format": "beingh0-policy", "version": FORMAT_VERSION, "config": self.config.to_dict(),
                "spec": self.spec.to_dict()}
        tmp = root / (POLICY_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, root / POLICY_FILE)
        return root

    @classmethod
    def from_pretrained(cls, path, *, device=None, **vla_kw) -> BeingH0Policy:
        """Load a folder :meth:`save_pretrained` wrote; every missing or extra tensor is an error."""
        from safetensors.torch import load_file

        from ..vla import VLA

        root = Path(path)
        if not (root / POLICY_FILE).is_file():
            raise UserFileError(f"{root} has no {POLICY_FILE}; pass a folder written by `beingh0 posttrain` "
                                "(OUT/policy) or BeingH0Policy.save_pretrained")
        meta = json.loads((root / POLICY_FILE).read_text())
        if meta.get("format") != "beingh0-policy" or meta.get("version") != FORMAT_VERSION:
            raise UserValueError(f"{root / POLICY_FILE}: format {meta.get('format')!r} version {meta.get('version')!r}; "
                                 f"expected beingh0-policy version {FORMAT_VERSION}")
        vla = VLA.from_pretrained(root / "vla", **vla_kw)
        cfg = {"state_history": 1, "state_to_queries": False, **meta["config"]}  # as saved before these options
        pol = cls(vla, PolicyConfig.from_dict(cfg), PolicySpec.from_dict(meta["spec"]))
        if not (root / WEIGHTS_FILE).is_file():
            raise UserFileError(f"{root} has no {WEIGHTS_FILE}")
        sd = load_file(str(root / WEIGHTS_FILE))
        own = pol.head_state_dict()
        missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
        bad = [k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape)]
        if missing or extra or bad:
            raise UserValueError(f"{root / WEIGHTS_FILE} does not match {POLICY_FILE}: missing {missing[:4]}, unexpected "
                                 f"{extra[:4]}, wrong shape {bad[:4]}")
        pol.load_state_dict(sd, strict=False)
        if device is not None:
            pol.to(device)
        return pol
