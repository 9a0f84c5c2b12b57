"""Generated motion blocks: lenient parsing (valid-generation rate) and decoding to one continuous
MANO motion per hand in the camera frame.

**Parsing** (:func:`parse_blocks`): the generated tokens are scanned once. A *block* is every span
that starts with ``<MOT>``; it ends at the next ``</MOT>`` (or at the next ``<MOT>``, the end token or
the end of the output when that comes first). The k-th block fills the k-th expected (second, hand)
slot. A block is **valid** when it is closed by ``</MOT>``, holds exactly ``tokens_per_block`` tokens,
all of them motion ids, each of the (part, layer) the layout puts at its position. Invalid blocks
(wrong framing, wrong length, text or a wrong id inside), slots no block reached and blocks past the
expected ones are counted; nothing raises. The valid-generation rate is valid slots / expected slots.

**Decoding** (:func:`decode_hands`): the blocks of one hand, in second order, decode through the
motion tokenizer (``decode_features``) into 15-frame windows of MANO parameters in the right-hand
convention, each window expressed in the wrist frame of its own first frame (the rule the motion
ids were made with: ``beingh0.data.tokenize``). The chaining rule that makes them one motion:

* window 0's reference frame is the hand's **start** pose (camera-frame ``global_orient`` and
  ``trans`` of the first generated frame: from the ground truth / the prompt's context when known;
  :data:`DEFAULT_START` otherwise), mirrored into the right-hand convention for a left hand;
* window ``w + 1``'s reference frame is the pose that window ``w`` reaches one frame after its last
  frame, extrapolated at constant velocity from its last two frames (``R_ref = R_14 (R_13^T R_14)``,
  ``t_ref = 2 t_14 - t_13``; ``chain="hold"`` uses frame 14 itself instead);
* each window is mapped into the camera frame by ``decanonicalize`` (``R <- R_ref R'``,
  ``t <- R_ref t' + t_ref``); a left hand is mirrored back at the end;
* an invalid block gives NaN frames (``valid`` False) and keeps the reference frame moving at the
  last window's velocity (its extrapolation for the missing second) -- so later seconds still land
  near where the hand would be; ``frames=`` (one reference per window, e.g. the ground truth's)
  overrides the chaining entirely (for evaluation that isolates per-window errors).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..motion import FPS, CanonicalFrame, decanonicalize, decode_features, from_right_hand, to_right_hand
from .vocab import MotionVocab

__all__ = ["CHAIN_RULES", "DEFAULT_START", "BlockParse", "chain_windows", "decode_hands", "parse_blocks"]

#: Start pose per hand used when none is known: wrist 0.5 m in front of the camera, 10 cm left or
#: right of the optical axis and 5 cm below it, identity wrist rotation.
DEFAULT_START = {"left": {"global_orient": (0.0, 0.0, 0.0), "trans": (-0.1, 0.05, 0.5)},
                 "right": {"global_orient": (0.0, 0.0, 0.0), "trans": (0.1, 0.05, 0.5)}}
CHAIN_RULES = ("extrapolate", "hold")


@dataclass
class BlockParse:
    """Parsed blocks of one generation.

    Attributes:
        blocks: (num_expected, tokens_per_block) int64 motion ids, -1 rows for invalid/missing blocks.
        valid: (num_expected,) bool.
        found: blocks started (``<MOT>`` seen) in the output.
        extra: blocks past the expected number.
        reasons: per expected slot, "" (valid) or why it is invalid.
    """

    blocks: torch.Tensor
    valid: torch.Tensor
    found: int
    extra: int
    reasons: list[str] = field(default_factory=list)

    @property
    def valid_rate(self) -> float:
        n = self.valid.numel()
        return float(self.valid.float().mean()) if n else 1.0


def parse_blocks(tokens, vocab: MotionVocab, num_expected: int, eos_token_id: int | None = None) -> BlockParse:
    """Leniently parse generated token ids (1-D) into ``num_expected`` blocks (module docstring)."""
    t = torch.as_tensor(tokens).reshape(-1).long().cpu()
    n = vocab.layout.tokens_per_block
    blocks = torch.full((num_expected, n), -1, dtype=torch.long)
    valid = torch.zeros(num_expected, dtype=torch.bool)
    reasons = ["missing"] * num_expected
    seq = t.tolist()
    starts = [i for i, x in enumerate(seq) if x == vocab.mot_start]
    found = len(starts)
    if eos_token_id is not None and eos_token_id in seq:
        stop = seq.index(eos_token_id)
        starts = [s for s in starts if s < stop]
        found = len(starts)
    else:
        stop = len(seq)
    want_part, want_layer = vocab.layout.expected_part_layer()
    for k, s in enumerate(starts):
        if k >= num_expected:
            break
        nxt = starts[k + 1] if k + 1 < len(starts) else stop
        end = next((j for j in range(s + 1, nxt) if seq[j] == vocab.mot_end), None)
        body = t[s + 1:(end if end is not None else nxt)]
        if end is None:
            reasons[k] = "not closed by </MOT>"
            continue
        if body.numel() != n:
            reasons[k] = f"{body.numel()} tokens instead of {n}"
            continue
        motion = vocab.is_motion(body)
        if not bool(motion.all()):
            reasons[k] = "non-motion token inside"
            continue
        ids = body - vocab.offset
        part, layer, _ = vocab.layout.split_id(ids)
        if bool(((part != want_part) | (layer != want_layer)).any()):
            reasons[k] = "id of the wrong (part, layer) at a position"
            continue
        blocks[k], valid[k], reasons[k] = ids, True, ""
    return BlockParse(blocks, valid, found, max(0, found - num_expected), reasons)


# ------------------------------------------------------------------------------------ MANO
def _frame_of(global_orient, trans) -> CanonicalFrame:
    go = torch.as_tensor(global_orient, dtype=torch.float64).reshape(3)
    tr = torch.as_tensor(trans, dtype=torch.float64).reshape(3)
    return CanonicalFrame(axis_angle_to_matrix(go), tr)


def _next_frame(p: dict, rule: str) -> CanonicalFrame:
    R = axis_angle_to_matrix(p["global_orient"][-2:].double())
    t = p["trans"][-2:].double()
    if rule == "hold":
        return CanonicalFrame(R[1], t[1])
    return CanonicalFrame(R[1] @ (R[0].T @ R[1]), 2 * t[1] - t[0])


def _advance(frame: CanonicalFrame, prev: CanonicalFrame | None, rule: str) -> CanonicalFrame:
    """Reference frame one window after ``frame`` when the window in between is missing: repeat the
    motion from ``prev`` to ``frame`` (a constant-velocity guess), or hold."""
    if prev is None or rule == "hold":
        return frame
    dR = prev.rotation.T @ frame.rotation
    return CanonicalFrame(frame.rotation @ dR, 2 * frame.origin - prev.origin)


def chain_windows(windows: Sequence[dict | None], start: CanonicalFrame, *, chain: str = "extrapolate",
                  frames: Sequence[CanonicalFrame] | None = None) -> dict:
    """Windows of right-hand-convention parameters, each in the frame of its own first frame (None:
    an invalid window) -> one camera-frame motion ``{global_orient, hand_pose, trans (T, 3/45/3)
    float64, valid (T,) bool}`` (the module docstring's rule). ``frames``: explicit references."""
    if chain not in CHAIN_RULES:
        raise ValueError(f"chain must be one of {CHAIN_RULES}, got {chain!r}")
    if frames is not None and len(frames) != len(windows):
        raise ValueError(f"got {len(frames)} reference frames for {len(windows)} windows")
    out = {"global_orient": [], "hand_pose": [], "trans": [], "valid": []}
    ref, prev = start, None
    for w, p in enumerate(windows):
        if frames is not None:
            ref = frames[w]
        T = FPS if p is None else p["global_orient"].shape[0]
        if p is None:
            nan = torch.full((T, 3), float("nan"), dtype=torch.float64)
            out["global_orient"].append(nan)
            out["trans"].append(nan.clone())
            out["hand_pose"].append(torch.full((T, 45), float("nan"), dtype=torch.float64))
            out["valid"].append(torch.zeros(T, dtype=torch.bool))
            ref, prev = _advance(ref, prev, chain), ref
            continue
        q = {k: p[k].double() for k in ("global_orient", "hand_pose", "trans")}
        cam = decanonicalize(q, ref)
        for k in ("global_orient", "hand_pose", "trans"):
            out[k].append(cam[k])
        out["valid"].append(torch.ones(T, dtype=torch.bool))
        ref, prev = _next_frame(cam, chain), ref
    if not windows:
        return {"global_orient": torch.zeros(0, 3, dtype=torch.float64), "hand_pose": torch.zeros(0, 45, dtype=torch.float64),
                "trans": torch.zeros(0, 3, dtype=torch.float64), "valid": torch.zeros(0, dtype=torch.bool)}
    return {k: torch.cat(v) for k, v in out.items()}


def decode_hands(blocks: torch.Tensor, slots: Sequence[tuple[int, str]], motion_tokenizer, *,
                 start: Mapping[str, Mapping] | None = None, chain: str = "extrapolate",
                 frames: Mapping[str, Sequence[CanonicalFrame]] | None = None) -> dict[str, dict]:
    """Motion blocks -> ``{hand: {global_orient (T, 3), hand_pose (T, 45), trans (T, 3), valid (T,)}}``
    float64 in the camera frame, ``T = 15 x seconds`` of that hand.

    Args:
        blocks: (n, tokens_per_block) motion ids, -1 rows for invalid blocks.
        slots: the (second, hand) of each block (second-major, left before right).
        motion_tokenizer: a ``beingh0.tokenizer.MotionTokenizer`` (its layout must be the blocks').
        start: ``{hand: {"global_orient": (3,), "trans": (3,)}}`` camera-frame pose of the hand at its
            first generated frame (default :data:`DEFAULT_START`).
        chain: ``"extrapolate"`` (default) or ``"hold"``: see the module docstring.
        frames: ``{hand: [CanonicalFrame per window]}`` camera-frame, in the hand's own convention
            (mirrored here); overrides the chaining.
    """
    blocks = torch.as_tensor(blocks).long()
    if blocks.dim() != 2 or blocks.shape[0] != len(slots):
        raise ValueError(f"blocks must be (len(slots)={len(slots)}, tokens_per_block), got {tuple(blocks.shape)}")
    spec = motion_tokenizer.spec
    out = {}
    for hand in sorted({h for _, h in slots}):
        rows = sorted([(s, i) for i, (s, h) in enumerate(slots) if h == hand])
        idx = [i for _, i in rows]
        ok = [bool((blocks[i] >= 0).all()) for i in idx]
        windows: list[dict | None] = [None] * len(idx)
        good = [j for j, v in enumerate(ok) if v]
        if good:
            feats = motion_tokenizer.decode_features(blocks[[idx[j] for j in good]].to(motion_tokenizer.norm_mean.device))
            feats = feats.cpu().reshape(len(good), -1, spec.dim)
            for k, j in enumerate(good):
                p = decode_features(feats[k], spec)
                windows[j] = {key: p[key] for key in ("global_orient", "hand_pose", "trans")}
        s0 = (start or {}).get(hand, DEFAULT_START[hand])
        s_r = to_right_hand({"global_orient": torch.as_tensor(s0["global_orient"], dtype=torch.float64).reshape(1, 3),
                             "trans": torch.as_tensor(s0["trans"], dtype=torch.float64).reshape(1, 3)}, hand)
        start_frame = _frame_of(s_r["global_orient"][0], s_r["trans"][0])
        fr = None
        if frames is not None and hand in frames:
            fr = []
            for f in frames[hand]:
                m = to_right_hand({"global_orient": matrix_to_axis_angle(f.rotation.double())[None],
                                   "trans": f.origin.double()[None]}, hand)
                fr.append(_frame_of(m["global_orient"][0], m["trans"][0]))
        cam = chain_windows(windows, start_frame, chain=chain, frames=fr)
        valid = cam.pop("valid")
        cam = from_right_hand(cam, hand)
        cam["valid"] = valid
        out[hand] = cam
    return out
