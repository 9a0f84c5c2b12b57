"""A TMR-style text-motion embedding model: the yardstick of the evaluation's retrieval R@k and FID.

Two encoders map a text and a hand motion into one unit-norm space (Petrovich et al., TMR, 2023,
without the VAE part): trained contrastively (symmetric InfoNCE with a learned temperature; pairs in
a batch that share the same text are not used as each other's negatives), entirely offline.

* **Text**: the tiny VLA's byte-level BPE (``beingh0.vla.text_tokenizer.tiny_tokenizer``, ships with
  the package: nothing is downloaded), a small transformer encoder and a masked mean pool.
  Texts are normalised (lower case, no trailing full stop) so that an instruction inside a prompt
  and the same sentence as a caption are one text.
* **Motion**: per frame the ``spec`` features (default D99: 6D finger and wrist rotations, wrist
  position; camera frame, through THE feature path ``beingh0.motion.hand_features``, left hands
  mirrored) of the left and of the right hand side by side, plus one presence flag per hand
  (a hand that is absent or invalid at a frame is zeros with flag 0); any number of frames up to
  ``max_seconds`` with a padding mask; normalised by statistics of the training pairs; a small
  transformer encoder and a masked mean pool.

Pairs come from instruction samples (``beingh0.data.instructions``) of dataset folders: a
``generation`` sample gives (its instruction, its target motion), a ``translation`` sample (its
caption, its input motion). ``beingh0 eval train-retrieval`` trains it through ``beingh0.train.fit``
(progress bar, atomic checkpoints, exact resume) and reports its own R@1/R@3/R@10 on the training
pairs and on held-out pairs, next to chance (``report.json``): those numbers say how much the
evaluation's R@3 and FID can mean.

Saved as ``retrieval.safetensors`` (weights and normalisation) + ``retrieval.json`` (config).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..core.config import validate_config
from ..core.errors import UserFileError, UserValueError
from ..data.instructions import TEMPLATES, InstructionOptions, instruction_samples
from ..data.shards import ShardIndex, read_episode
from ..motion.features import FeatureSpec
from ..motion.hands import SIDES, hand_features

__all__ = ["RetrievalConfig", "RetrievalModel", "normalize_text", "sample_text", "motion_input", "dataset_pairs",
           "PairDataset", "RetrievalTrain", "retrieval_scores", "train_retrieval", "format_report", "load_retrieval", "save_retrieval", "WEIGHTS", "CONFIG"]

WEIGHTS, CONFIG = "retrieval.safetensors", "retrieval.json"
FORMAT = "beingh0.retrieval/1"


@dataclass(frozen=True)
class RetrievalConfig:
    """Architecture and inputs of the text-motion embedding model."""

    spec: str = field(default="D99", metadata={"choices": ("D51", "D99")})
    """Per-hand motion features (camera frame)."""
    fps: float = field(default=15.0, metadata={"gt": 0})
    """Frame rate of the motion it reads (the data's 15 FPS)."""
    max_seconds: int = field(default=4, metadata={"ge": 1})
    """Longest motion in seconds (longer ones are cut)."""
    width: int = field(default=128, metadata={"ge": 8})
    """Transformer width of both encoders."""
    layers: int = field(default=2, metadata={"ge": 1})
    """Transformer layers of each encoder."""
    heads: int = field(default=4, metadata={"ge": 1})
    """Attention heads."""
    embed_dim: int = field(default=64, metadata={"ge": 2})
    """Dimension of the joint embedding space."""
    max_text_tokens: int = field(default=64, metadata={"ge": 4})
    """Longest text in BPE tokens (longer ones are cut)."""
    dropout: float = field(default=0.1, metadata={"ge": 0, "lt": 1})
    """Dropout inside both encoders while training."""
    temperature: float = field(default=0.07, metadata={"gt": 0})
    """Initial InfoNCE temperature (learned)."""

    def __post_init__(self):
        validate_config(self)
        if self.width % self.heads:
            raise UserValueError(f"width {self.width} must be a multiple of heads {self.heads}")

    @property
    def input_dim(self) -> int:
        return 2 * FeatureSpec(self.spec).dim + 2

    @property
    def max_frames(self) -> int:
        return int(round(self.max_seconds * self.fps))

    @classmethod
    def from_dict(cls, d: dict) -> "RetrievalConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserValueError(f"retrieval config has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------------- inputs
def normalize_text(s: str) -> str:
    """One text whatever its casing, surrounding blanks and trailing full stop."""
    return re.sub(r"\s+", " ", s.strip()).rstrip(".").strip().lower()


def _template_regex(task: str, tid: int) -> re.Pattern:
    t = re.escape(TEMPLATES[task][tid])
    seen: set = set()

    def sub(m):
        name = m.group(1)
        if name in seen:
            return f"(?P={name})"
        seen.add(name)
        return f"(?P<{name}>.+?)"
    return re.compile(re.sub(r"\\\{(\w+)\\\}", sub, t), re.S)


_REGEX: dict = {}


def sample_text(sample: dict) -> str | None:
    """The text of an instruction sample's motion: a generation (or prediction) sample's instruction
    as its template holds it, a translation sample's response; None when it has none."""
    task = sample["task"]
    if task == "translation":
        return normalize_text(sample["response"])
    if "{instruction}" not in TEMPLATES[task][sample["template"]]:
        return None
    key = (task, sample["template"])
    if key not in _REGEX:
        _REGEX[key] = _template_regex(*key)
    m = _REGEX[key].fullmatch(sample["prompt"])
    return normalize_text(m.group("instruction")) if m else None


def motion_input(hands: dict, cfg: RetrievalConfig, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (T, 2 D + 2) float32, mask (T,) bool) of one motion: ``hands`` maps ``"left"`` /
    ``"right"`` to camera-frame MANO parameters ``global_orient`` (T, 3), ``hand_pose`` (T, 45),
    ``trans`` (T, 3) and optionally ``valid`` (T,); missing hands are zeros (flag 0). At most
    ``cfg.max_frames`` frames are kept."""
    if not hands:
        raise UserValueError("a motion needs at least one hand")
    spec = FeatureSpec(cfg.spec)
    T = frames if frames is not None else max(int(np.asarray(h["trans"]).shape[0]) for h in hands.values())
    T = min(T, cfg.max_frames)
    out = torch.zeros(T, 2 * spec.dim + 2)
    any_valid = torch.zeros(T, dtype=torch.bool)
    for k, side in enumerate(SIDES):
        h = hands.get(side)
        if h is None:
            continue
        p = {n: torch.as_tensor(np.asarray(h[n][:T]), dtype=torch.float64) for n in ("global_orient", "hand_pose", "trans")}
        n = p["trans"].shape[0]
        v = torch.ones(n, dtype=torch.bool) if h.get("valid") is None else torch.as_tensor(np.asarray(h["valid"][:T])).bool()
        x = hand_features(p, spec, side).float() * v[:, None]
        out[:n, k * spec.dim:(k + 1) * spec.dim] = x
        out[:n, 2 * spec.dim + k] = v.float()
        any_valid[:n] |= v
    return out, any_valid


def _episode_hands(ep, side: str, a: int, b: int) -> dict:
    tr = ep.hands[side]
    return {"global_orient": tr.global_orient[a:b], "hand_pose": tr.hand_pose[a:b], "trans": tr.trans[a:b],
            "valid": tr.valid[a:b]}


def sample_motion(ep, sample: dict) -> dict:
    """The camera-frame MANO parameters of an instruction sample's motion span, per hand."""
    a = int(round(sample["t0"] * ep.fps))
    b = int(round((sample["t0"] + sample["duration"]) * ep.fps))
    sides = ("left", "right") if sample["hand"] == "both" else (sample["hand"],)
    return {s: _episode_hands(ep, s, a, b) for s in sides if s in ep.hands}


def dataset_pairs(folders, cfg: RetrievalConfig, seed: int = 0, tasks=("generation", "translation"),
                  max_pairs: int | None = None) -> list[dict]:
    """(text, motion) pairs of the instruction samples of dataset folders (see the module docstring):
    dicts with ``text``, ``x`` (T, F), ``mask`` (T,), ``episode`` and ``sample``."""
    folders = [Path(f) for f in ([folders] if isinstance(folders, (str, Path)) else folders)]
    out: list[dict] = []
    opts = InstructionOptions(max_seconds=cfg.max_seconds)
    for f in folders:
        if not (f / "index.json").is_file():
            raise UserFileError(f"{f} is not a dataset folder (no index.json); build one with `beingh0 data build` "
                                "or `beingh0 data synth`")
        idx = ShardIndex(f)
        for e, ref in enumerate(idx.refs):
            ent = ref.entry
            view = {"key": ent["key"], "source": ent["source"], "hands": ent["hands"], "duration": ent["duration"],
                    "text": idx.header(e)["text"]}
            samples = [s for s in instruction_samples(view, seed, opts) if s["task"] in tasks]
            if not samples:
                continue
            ep = read_episode(ref)
            for s in samples:
                text = sample_text(s)
                if not text:
                    continue
                x, m = motion_input(sample_motion(ep, s), cfg)
                if m.sum() < 2:
                    continue
                out.append({"text": text, "x": x, "mask": m, "episode": f"{f}|{ent['key']}", "sample": s})
                if max_pairs is not None and len(out) >= max_pairs:
                    return out
    if not out:
        raise UserValueError(f"no (text, motion) pair in {', '.join(map(str, folders))}: the episodes carry no "
                             "instructions or captions")
    return out


# ----------------------------------------------------------------------------------- model
class _Encoder(nn.Module):
    def __init__(self, cfg: RetrievalConfig, max_len: int):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(max_len, cfg.width))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 4 * cfg.width, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, cfg.embed_dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.blocks(h + self.pos[:h.shape[1]], src_key_padding_mask=~mask)
        h = self.norm(h)
        m = mask[..., None].to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return nn.functional.normalize(self.out(pooled), dim=-1)


class RetrievalModel(nn.Module):
    """Text and motion encoders into one unit-norm space (see the module docstring)."""

    def __init__(self, cfg: RetrievalConfig = RetrievalConfig()):
        super().__init__()
        from .text_tokenizer import tiny_tokenizer

        self.cfg = cfg
        self.tokenizer = tiny_tokenizer()
        vocab = len(self.tokenizer)
        self.text_embed = nn.Embedding(vocab, cfg.width)
        self.text = _Encoder(cfg, cfg.max_text_tokens)
        self.motion_in = nn.Linear(cfg.input_dim, cfg.width)
        self.motion = _Encoder(cfg, cfg.max_frames)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)))
        self.register_buffer("feat_mean", torch.zeros(cfg.input_dim))
        self.register_buffer("feat_std", torch.ones(cfg.input_dim))

    def fit_normalization(self, pairs: Sequence[dict]) -> None:
        x = torch.cat([p["x"][p["mask"]] for p in pairs]).double()
        self.feat_mean.copy_(x.mean(0).float())
        self.feat_std.copy_(x.std(0).clamp_min(1e-3).float())

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.tokenizer.encode(normalize_text(t), add_special_tokens=False)[:self.cfg.max_text_tokens] or [0]
               for t in texts]
        L = max(len(i) for i in ids)
        out = torch.zeros(len(ids), L, dtype=torch.long)
        mask = torch.zeros(len(ids), L, dtype=torch.bool)
        for r, i in enumerate(ids):
            out[r, :len(i)] = torch.tensor(i)
            mask[r, :len(i)] = True
        return out, mask

    def encode_text_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.text(self.text_embed(ids), mask)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        ids, mask = self.tokenize(texts)
        dev = self.feat_mean.device
        return self.encode_text_ids(ids.to(dev), mask.to(dev))

    def encode_motion(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, D) embeddings of motion inputs (B, T, F) with frame masks (B, T)."""
        x = x[:, :self.cfg.max_frames].to(self.feat_mean.device)
        mask = mask[:, :self.cfg.max_frames].to(x.device).bool()
        h = self.motion_in((x - self.feat_mean) / self.feat_std * mask[..., None])
        return self.motion(h, mask)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Symmetric InfoNCE over the batch; same-text pairs are not negatives of each other."""
        t = self.encode_text_ids(batch["text_ids"], batch["text_mask"])
        m = self.encode_motion(batch["x"], batch["mask"])
        scale = self.log_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * m @ t.T
        g = batch["group"]
        same = (g[:, None] == g[None, :]) & ~torch.eye(len(g), dtype=torch.bool, device=g.device)
        logits = logits.masked_fill(same, -1e4)
        target = torch.arange(len(g), device=g.device)
        loss = 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))
        acc = (logits.argmax(1) == target).float().mean()
        return loss, {"targets": float(len(g)), "m2t_acc": acc.detach(), "temperature": (1 / scale).detach()}


def _collate(model: RetrievalModel):
    def collate(items: list[dict]) -> dict:
        T = max(int(it["x"].shape[0]) for it in items)
        x = torch.zeros(len(items), T, items[0]["x"].shape[1])
        mask = torch.zeros(len(items), T, dtype=torch.bool)
        for r, it in enumerate(items):
            x[r, :it["x"].shape[0]], mask[r, :it["x"].shape[0]] = it["x"], it["mask"]
        ids, tmask = model.tokenize([it["text"] for it in items])
        return {"x": x, "mask": mask, "text_ids": ids, "text_mask": tmask,
                "group": torch.tensor([it["group"] for it in items], dtype=torch.long),
                "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
    return collate


class PairDataset(torch.utils.data.Dataset):
    """In-memory pairs with what ``ResumableLoader`` needs (seed, fingerprint, episode_starts)."""

    def __init__(self, pairs: list[dict], seed: int = 0):
        self.pairs, self.seed = pairs, int(seed)
        texts = sorted({p["text"] for p in pairs})
        self._group = {t: i for i, t in enumerate(texts)}

    def __len__(self) -> int:
        return len(self.pairs)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in self.pairs:
            h.update(p["text"].encode())
            h.update(p["x"].numpy().tobytes())
        return h.hexdigest()[:16]

    def episode_starts(self) -> np.ndarray:
        keys = [p["episode"] for p in self.pairs]
        cut = [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
        return np.array([0, *cut, len(keys)], np.int64)

    def __getitem__(self, i: int) -> dict:
        j = int(i) % len(self.pairs)
        p = self.pairs[j]
        return {"text": p["text"], "x": p["x"], "mask": p["mask"], "group": self._group[p["text"]], "index": int(i)}


# ----------------------------------------------------------------------------------- scores
@torch.no_grad()
def embed_pairs(model: RetrievalModel, pairs: Sequence[dict], batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(motion embeddings (N, E), text embeddings (N, E)) of pairs."""
    was = model.training
    model.eval()
    ms, ts = [], []
    col = _collate(model)
    for i in range(0, len(pairs), batch):
        b = col([{**p, "group": 0, "index": 0} for p in pairs[i:i + batch]])
        ms.append(model.encode_motion(b["x"], b["mask"]).cpu())
        ts.append(model.encode_text([p["text"] for p in pairs[i:i + batch]]).cpu())
    model.train(was)
    return torch.cat(ms), torch.cat(ts)


def retrieval_scores(model: RetrievalModel, pairs: Sequence[dict], ks=(1, 3, 10), pool: int | None = None) -> dict:
    """Motion-to-text and text-to-motion R@k (percent) of pairs, with chance; pairs with the same
    text count as correct for each other."""
    from .metrics import chance_recall_at_k, recall_at_k

    m, t = embed_pairs(model, pairs)
    sim = (m @ t.T).double()
    groups = [p["text"] for p in pairs]
    out: dict = {"pairs": len(pairs), "texts": len(set(groups))}
    for k in ks:
        out[f"m2t_r{k}"] = recall_at_k(sim, k, groups, pool)
        out[f"t2m_r{k}"] = recall_at_k(sim.T, k, groups, pool)
        out[f"chance_r{k}"] = chance_recall_at_k(k, groups, pool)
    return out


# ----------------------------------------------------------------------------------- save/load
def save_retrieval(model: RetrievalModel, folder, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(sd, str(tmp))
    tmp.replace(folder / WEIGHTS)
    meta = {"format": FORMAT, "config": asdict(model.cfg), **(extra or {})}
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(folder / CONFIG)
    return folder


def load_retrieval(folder, device: str | torch.device = "cpu") -> RetrievalModel:
    """A saved retrieval model (a folder with ``retrieval.json`` + ``retrieval.safetensors``, or a
    training run's folder holding ``model/``)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file() and (folder / "model" / CONFIG).is_file():
        folder = folder / "model"
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise UserFileError(f"{folder} holds no retrieval model ({CONFIG} + {WEIGHTS}); train one with "
                            "`beingh0 eval train-retrieval --out DIR`")
    try:
        meta = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise UserValueError(f"{folder / CONFIG} is not valid JSON ({e}); train the retrieval model again") from None
    if meta.get("format") != FORMAT:
        raise UserValueError(f"{folder / CONFIG} has format {meta.get('format')!r}, expected {FORMAT!r}")
    model = RetrievalModel(RetrievalConfig.from_dict(meta["config"]))
    sd = load_file(str(folder / WEIGHTS))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise UserValueError(f"{folder / WEIGHTS} does not match its config (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}); train the retrieval model again")
    return model.to(device).eval()


# ----------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class RetrievalTrain:
    """Training settings of ``beingh0 eval train-retrieval``."""

    steps: int = field(default=600, metadata={"ge": 1})
    """Optimizer steps."""
    batch_size: int = field(default=64, metadata={"ge": 2})
    """Pairs per batch (the InfoNCE negatives)."""
    lr: float = field(default=1e-3, metadata={"gt": 0})
    """Peak AdamW learning rate (cosine decay after 30 warm-up steps)."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seeds the model, the loader and the instruction templates."""
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    """Training device."""
    max_seconds: float | None = field(default=None, metadata={"gt": 0})
    """Wall-clock budget of the loop (checkpoint and stop; the same command continues)."""
    ckpt_every: int = field(default=200, metadata={"ge": 1})
    """Checkpoint every this many steps."""
    progress: bool = True
    """tqdm progress bar."""
    num_threads: int | None = field(default=None, metadata={"ge": 1})
    """torch threads while training."""

    def __post_init__(self):
        validate_config(self)


def _split_pairs(pairs: list[dict], frac: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out pairs by episode (a fraction ``frac`` of the episodes)."""
    eps = sorted({p["episode"] for p in pairs})
    rng = np.random.default_rng(seed)
    k = max(1, int(round(frac * len(eps)))) if len(eps) > 1 else 0
    held = set(rng.permutation(eps)[:k].tolist())
    return [p for p in pairs if p["episode"] not in held], [p for p in pairs if p["episode"] in held]


def train_retrieval(data, out_dir, val_data=None, config: RetrievalConfig = RetrievalConfig(),
                    train: RetrievalTrain = RetrievalTrain(), verbose: bool = True) -> dict:
    """Train the retrieval model on the pairs of dataset folder(s) ``data`` into ``out_dir`` (see the
    module docstring); held-out pairs come from ``val_data`` or, without it, 20 % of the episodes.
    The same call again continues from the newest checkpoint. Returns the report (also
    ``out_dir/report.json``); the model is in ``out_dir/model``."""
    from ..data.loader import ResumableLoader
    from ..train.config import TrainConfig
    from ..train.loop import fit

    t0 = time.perf_counter()
    out = Path(out_dir)
    pairs = dataset_pairs(data, config, train.seed)
    if val_data:
        train_pairs, val_pairs = pairs, dataset_pairs(val_data, config, train.seed)
    else:
        train_pairs, val_pairs = _split_pairs(pairs, 0.2, train.seed)
        if not train_pairs:
            train_pairs = pairs
    torch.manual_seed(train.seed)
    model = RetrievalModel(config)
    model.fit_normalization(train_pairs)
    ds = PairDataset(train_pairs, train.seed)
    loader = ResumableLoader(ds, batch_size=min(train.batch_size, len(ds)), shuffle="global", seed=train.seed,
                             collate_fn=_collate(model), drop_last=False)
    fc = TrainConfig(steps=train.steps, lr=train.lr, warmup_steps=min(30, train.steps // 10), weight_decay=0.01,
                     device=train.device, seed=train.seed, ckpt_every=train.ckpt_every, max_seconds=train.max_seconds,
                     progress=train.progress and verbose, plots=True, num_threads=train.num_threads)
    res = fit(model, lambda m, b: m(b), loader, fc, out, resume="auto",
              meta={"retrieval": asdict(config), "train": asdict(train)})
    model.eval()
    report = {"steps": res.step, "stopped": res.stopped, "seconds": time.perf_counter() - t0,
              "config": asdict(config),
              "train": retrieval_scores(model, train_pairs), "held_out": retrieval_scores(model, val_pairs),
              "held_out_pool32": retrieval_scores(model, val_pairs, pool=32) if len(val_pairs) >= 32 else None,
              "data": [str(d) for d in ([data] if isinstance(data, (str, Path)) else data)],
              "val_data": [str(d) for d in val_data] if val_data else "20% of the training episodes"}
    save_retrieval(model, out / "model", {"report": {k: report[k] for k in ("train", "held_out")}})
    (out / "report.json").write_text(json.dumps(report, indent=1))
    if verbose:
        print(format_report(report))
    return report


def format_report(r: dict) -> str:
    lines = [f"{'pairs':<22} {'n':>5} {'texts':>6} {'M2T R@1':>8} {'R@3':>6} {'R@10':>6} {'T2M R@1':>8} {'R@3':>6} "
             f"{'R@10':>6} {'chance R@1/3/10':>16}"]
    for name in ("train", "held_out", "held_out_pool32"):
        s = r.get(name)
        if not s:
            continue
        lines.append(f"{name:<22} {s['pairs']:>5} {s['texts']:>6} {s['m2t_r1']:>8.1f} {s['m2t_r3']:>6.1f} "
                     f"{s['m2t_r10']:>6.1f} {s['t2m_r1']:>8.1f} {s['t2m_r3']:>6.1f} {s['t2m_r10']:>6.1f} "
                     f"{s['chance_r1']:>5.1f}/{s['chance_r3']:.1f}/{s['chance_r10']:.1f}")
    return "\n".join(lines)
