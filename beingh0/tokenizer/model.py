"""The GRQ-VAE motion tokenizer: 1-D conv encoder/decoder per part, grouped residual VQ, losses,
and the motion <-> token-id interface.

Per part (wrist: R, t; finger: theta + wrist-relative joints; or the whole hand):
    (B, 16, D_part) -> Encoder -> (B, code_dim, 4) -> GRQ -> Decoder -> (B, 16, D_part)
Encoder: conv3 + ReLU, then per downsampling step a stride-2 conv (kernel 4) and residual blocks
with dilations 9/3/1, then conv3 to code_dim. Decoder mirrors it with nearest-neighbour 2x
upsampling + conv3. Loss (paper eq. 6): MSE over all feature dims of the valid (unpadded) frames
in normalised units (the joint dims are the auxiliary target) + commit_weight x commitment
(+ wrist_weight x MSE of the wrist slice for the whole-hand variants).
"""
from __future__ import annotations

import torch
from torch import nn

from ..motion import FPS, WINDOW_FRAMES, WINDOW_PAD, FeatureSpec, NormStats, decode_features, merge_parts, split_parts
from .config import TokenizerConfig
from .layout import TokenLayout
from .quantizer import GroupedResidualVQ

__all__ = ["MotionTokenizer", "PartTokenizer"]


class _ResBlock(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.proj(torch.relu(self.conv(torch.relu(x))))


def _res_stack(width, dilations):
    return nn.Sequential(*[_ResBlock(width, d) for d in dilations])


class PartTokenizer(nn.Module):
    """Encoder, GRQ and decoder of one part (input/output (B, T, in_dim), T a multiple of 2**down_t)."""

    def __init__(self, in_dim: int, cfg: TokenizerConfig):
        super().__init__()
        w = cfg.width
        enc = [nn.Conv1d(in_dim, w, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.down_t):
            enc += [nn.Conv1d(w, w, 4, stride=2, padding=1), _res_stack(w, cfg.dilations)]
        enc += [nn.Conv1d(w, cfg.code_dim, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv1d(cfg.code_dim, w, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.down_t):
            dec += [_res_stack(w, cfg.dilations), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(w, w, 3, padding=1)]
        dec += [nn.Conv1d(w, w, 3, padding=1), nn.ReLU(), nn.Conv1d(w, in_dim, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.quantizer = GroupedResidualVQ(cfg.groups, cfg.layers, cfg.codes, cfg.group_dim, ema_decay=cfg.ema_decay,
                                           kmeans_init=cfg.kmeans_init, kmeans_iters=cfg.kmeans_iters,
                                           restart_after=cfg.restart_after)

    def _latents(self, x):
        z = self.encoder(x.transpose(1, 2))                              # (B, C, S)
        B, C, S = z.shape
        return z.permute(0, 2, 1).reshape(B * S, C), B, S

    def _decode_latents(self, q, B, S):
        return self.decoder(q.reshape(B, S, -1).permute(0, 2, 1)).transpose(1, 2)

    def forward(self, x):
        """-> (reconstruction (B, T, in_dim), codes (B, S, G, L), commitment loss)."""
        z, B, S = self._latents(x)
        q, codes, commit = self.quantizer(z)
        return self._decode_latents(q, B, S), codes.reshape(B, S, *codes.shape[1:]), commit

    def encode(self, x):
        z, B, S = self._latents(x)
        return self.quantizer.encode(z).reshape(B, S, self.quantizer.groups, self.quantizer.layers)

    def decode(self, codes):
        """codes (B, S, G, L) -> (B, S * 2**down_t, in_dim)."""
        B, S = codes.shape[:2]
        return self._decode_latents(self.quantizer.decode(codes.reshape(B * S, *codes.shape[2:])), B, S)


class MotionTokenizer(nn.Module):
    """Motion features <-> token ids. Build with ``MotionTokenizer(cfg, norm)``; ``norm`` is the
    per-dimension ``NormStats`` of the training features (stored as buffers, saved with the model)."""

    def __init__(self, cfg: TokenizerConfig, norm: NormStats | None = None):
        super().__init__()
        if not isinstance(cfg, TokenizerConfig):
            raise TypeError(f"cfg must be a TokenizerConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.spec = FeatureSpec(cfg.features)
        D = self.spec.dim
        if norm is None:
            norm = NormStats(torch.zeros(D), torch.ones(D))
        if norm.dim != D:
            raise ValueError(f"NormStats has {norm.dim} dims but {cfg.features} features have {D}")
        self.register_buffer("norm_mean", norm.mean.clone())
        self.register_buffer("norm_std", norm.std.clone())
        self.norm_floor = norm.floor
        dims = {"wrist": self.spec.wrist_dim, "finger": self.spec.finger_dim, "hand": D}
        self.parts = nn.ModuleDict({p: PartTokenizer(dims[p], cfg) for p in cfg.parts})
        self.layout = TokenLayout.from_config(cfg, WINDOW_PAD)
        s = self.spec.slices
        self._wrist_dims = list(range(s["global_orient"].start, s["global_orient"].stop)) + \
            list(range(s["trans"].start, s["trans"].stop))

    # -- normalisation -------------------------------------------------------------------------
    @property
    def norm(self) -> NormStats:
        return NormStats(self.norm_mean.cpu(), self.norm_std.cpu(), self.norm_floor)

    def normalize(self, x):
        return (x - self.norm_mean.to(x)) / self.norm_std.to(x)

    def denormalize(self, x):
        return x * self.norm_std.to(x) + self.norm_mean.to(x)

    # -- windows (normalised features) ---------------------------------------------------------
    def _split(self, x):
        if self.cfg.part_level:
            return dict(zip(("wrist", "finger"), split_parts(x, self.spec)))
        return {"hand": x}

    def _merge(self, parts: dict):
        if self.cfg.part_level:
            return merge_parts(parts["wrist"], parts["finger"], self.spec)
        return parts["hand"]

    def _check_windows(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != WINDOW_PAD or x.shape[2] != self.spec.dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"windows must be (B, {WINDOW_PAD}, {self.spec.dim}) {self.cfg.features} features, got {shape}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("motion features contain NaN or Inf; clean the input MANO parameters first")

    def forward(self, x, mask=None):
        """Normalised windows (B, 16, D), mask (B, 16) -> (loss, dict of float logs, reconstruction)."""
        self._check_windows(x)
        param = next(self.parameters())
        x = x.to(param)
        recon, commit = {}, x.new_zeros(())
        for name, part in self._split(x).items():
            recon[name], _, c = self.parts[name](part)
            commit = commit + c
        y = self._merge(recon)
        m = torch.ones(x.shape[:2], device=x.device) if mask is None else mask.to(x)
        denom = m.sum().clamp_min(1.0)
        err = (y - x) ** 2
        rec = (err.mean(-1) * m).sum() / denom
        loss = rec + self.cfg.commit_weight * commit
        logs = {"recon": rec.item(), "commit": commit.item()}
        if not self.cfg.part_level and self.cfg.wrist_weight > 0:
            wrist = (err[..., self._wrist_dims].mean(-1) * m).sum() / denom
            loss = loss + self.cfg.wrist_weight * wrist
            logs["wrist"] = wrist.item()
        logs["loss"] = loss.item()
        return loss, logs, y

    @torch.no_grad()
    def encode_windows(self, x) -> torch.Tensor:
        """Normalised windows (B, 16, D) -> codes (B, P, G, S, L)."""
        self._check_windows(x)
        x = x.to(next(self.parameters()))
        codes = [self.parts[n].encode(p) for n, p in self._split(x).items()]   # each (B, S, G, L)
        return torch.stack([c.permute(0, 2, 1, 3) for c in codes], 1)

    @torch.no_grad()
    def decode_windows(self, codes) -> torch.Tensor:
        """codes (B, P, G, S, L) -> normalised windows (B, 16, D)."""
        parts = {n: self.parts[n].decode(codes[:, i].permute(0, 2, 1, 3)) for i, n in enumerate(self.cfg.parts)}
        return self._merge(parts)

    # -- sequences <-> ids ---------------------------------------------------------------------
    @torch.no_grad()
    def encode_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (T, D) at 15 FPS, already in their reference frame -> ids (ceil(T / 15), 128)."""
        from ..motion import make_windows

        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[1] != self.spec.dim:
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            hint = ""
            if isinstance(feats, torch.Tensor) and feats.dim() == 2:
                try:
                    hint = f" (that size is {FeatureSpec.from_dim(feats.shape[1]).name}; this tokenizer was trained on {self.cfg.features})"
                except ValueError:
                    pass
            raise ValueError(f"features must be (T, {self.spec.dim}) ({self.cfg.features}), got {shape}{hint}; "
                             f"build them with beingh0.motion.encode_features(params, '{self.cfg.features}', model)")
        if not bool(torch.isfinite(feats).all()):
            raise ValueError("motion features contain NaN or Inf; clean the input MANO parameters first")
        w, m = make_windows(self.normalize(feats.double()))
        codes = self.encode_windows(w * m[..., None])
        return self.layout.codes_to_ids(codes)

    @torch.no_grad()
    def decode_features(self, ids: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """ids (seconds, 128) -> features (seconds * 15 or num_frames, D) float64 at 15 FPS."""
        codes = self.layout.ids_to_codes(ids).to(self.norm_mean.device)
        y = self.denormalize(self.decode_windows(codes).double())[:, :WINDOW_FRAMES].reshape(-1, self.spec.dim)
        if num_frames is not None:
            if not 0 < num_frames <= y.shape[0]:
                raise ValueError(f"num_frames={num_frames} must be in [1, {y.shape[0]}] for {codes.shape[0]} blocks")
            y = y[:num_frames]
        return y

    @torch.no_grad()
    def encode(self, motion, canonicalize: bool = True):
        """A ``MotionClip`` (any FPS, either side) -> (ids (seconds, 128), reference frame).

        The clip is resampled to 15 FPS, mirrored to the right hand if it is a left hand, and
        (``canonicalize``) expressed in the wrist frame of its first frame; the returned
        ``CanonicalFrame`` (None when not canonicalised) lets ``decode`` put it back.
        """
        from .data import clip_features

        feats, frame = clip_features(motion, self.spec, canonicalize=canonicalize)
        return self.encode_features(feats), frame

    @torch.no_grad()
    def decode(self, ids, frame=None, side: str = "right", num_frames: int | None = None, betas=None) -> dict:
        """ids (seconds, 128) -> MANO parameters at 15 FPS: global_orient (T, 3), hand_pose (T, 45),
        trans (T, 3) (+ betas when given). ``frame``: the ``CanonicalFrame`` from ``encode`` (puts
        the motion back into the camera frame); ``side`` mirrors back a left hand."""
        from ..motion import decanonicalize, from_right_hand

        feats = self.decode_features(ids, num_frames)
        p = decode_features(feats, self.spec)
        p = {k: p[k] for k in ("global_orient", "hand_pose", "trans")}
        if frame is not None:
            p = decanonicalize(p, frame)
        p = from_right_hand(p, side)
        if betas is not None:
            p["betas"] = torch.as_tensor(betas, dtype=torch.float64)
        return p

    @property
    def fps(self) -> int:
        return FPS

    def quantizers(self):
        return {n: p.quantizer for n, p in self.parts.items()}

    @torch.no_grad()
    def update_codebooks(self) -> None:
        """Apply every quantizer's recorded training statistics (EMA, usage, dead-code restart):
        once per optimizer step, after it (see ``GroupedResidualVQ.update``)."""
        for q in self.quantizers().values():
            q.update()
