"""One synthetic episode from a seed: scene, bimanual motion, camera, rendering, language.

:func:`synth_episode` is deterministic in its arguments (numpy generators seeded from
``(base_seed, index)``; rendering and MANO evaluation are deterministic on CPU).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...core.config import validate_config
from ...mano import hand_model
from ..episode import CameraTrack, Episode, Frames, HandTrack
from . import motion as M
from .language import describe
from .motion import SCENARIOS
from .raster import Mesh, render_frame
from .scene import SKIN_TONES, fit_camera, forearm_mesh, sample_background, sample_camera, sample_light, sample_table

GENERATOR_VERSION = 1
LICENSE = "CC0-1.0"
#: Labels in the renderer's label buffer.
LABEL_HAND = {"left": 1, "right": 2}
LABEL_ARM = {"left": 3, "right": 4}
LABEL_OBJECT0 = 10


@dataclass
class SynthConfig:
    """Settings of one synthetic episode (``synth_episode``, ``beingh0 data synth``)."""

    seconds: float = field(default=2.0, metadata={"gt": 0})
    """Episode length in seconds."""
    fps: float = field(default=15.0, metadata={"choices": (15, 30)})
    """Frame rate: 15 (Being-H0's motion rate) or 30."""
    size: tuple[int, int] = field(default=(256, 256), metadata={"ge": 16, "le": 4096})
    """Image width and height in pixels."""
    frames: bool = True
    """Render images (False: motion-only episodes, no rendering)."""
    image_format: str = field(default="mp4", metadata={"choices": ("mp4", "jpeg")})
    """How rendered frames are stored: an mp4 video or one JPEG per frame."""
    supersample: int = field(default=1, metadata={"ge": 1})
    """Supersampling factor per axis when rendering (anti-aliasing; 1 = none)."""
    scenario: str | None = field(default=None, metadata={"choices": SCENARIOS})
    """Force one scenario (None: drawn per episode)."""

    def __post_init__(self):
        validate_config(self)

    def validate(self) -> "SynthConfig":
        """Check the fields again (the dataclass is mutable) and return ``self``."""
        return validate_config(self)


def _mano(side, betas, go, hp, trans):
    m = hand_model(side)
    out = m(torch.as_tensor(betas, dtype=torch.float64)[None], torch.as_tensor(go, dtype=torch.float64),
            torch.as_tensor(hp, dtype=torch.float64), torch.as_tensor(trans, dtype=torch.float64))
    return out.vertices.numpy(), out.keypoints.numpy()


def synth_episode(base_seed: int, index: int, cfg: SynthConfig | None = None, episode_id: str | None = None,
                  return_labels: bool = False):
    """The synthetic episode ``index`` of the collection ``base_seed``.

    Returns an :class:`Episode` (validated); with ``return_labels`` also the renderer's label
    buffers (T, H, W) uint8 (see ``LABEL_*``; None for motion-only episodes)."""
    cfg = (cfg or SynthConfig()).validate()
    t_start = time.perf_counter()
    ss = np.random.SeedSequence([int(base_seed), int(index), GENERATOR_VERSION])
    rng = np.random.default_rng(ss)
    scenario = cfg.scenario or str(rng.choice(SCENARIOS, p=[0.32, 0.18, 0.14, 0.16, 0.20]))
    w, plans, betas, tasks, active = M.build_world(rng, scenario)
    fps = float(cfg.fps)
    T = max(1, int(round(cfg.seconds * fps)))
    S = T / fps
    D = max(p.t for p in plans.values())
    ws = float(rng.uniform(0, D - S)) if D > S else -float(rng.uniform(0, (S - D) * 0.6))
    for p in plans.values():
        p.finish(max(D, ws + S) + 0.01)
    times = ws + np.arange(T) / fps

    # hands in the world
    hw = {s: M.hand_world(s, plans[s], times, rng) for s in ("left", "right")}
    wrists = {s: (hw[s][0], hw[s][1]) for s in hw}
    obj_pose = M.object_poses(w.objects, w.init, plans, times, wrists)
    verts_w, kp_w = {}, {}
    for s in ("left", "right"):
        verts_w[s], kp_w[s] = _mano(s, betas, hw[s][2], hw[s][3], hw[s][0])

    # camera
    workspace = np.mean([P[:3, 3] for P in w.init], 0) * np.array([1.0, 0.0, 1.0])
    rig = sample_camera(rng, workspace)
    pts = np.concatenate([kp_w["left"], kp_w["right"]], 1)
    K, E, in_view = fit_camera(rig, pts, T, fps, cfg.size)

    hands = {}
    wrist_cam = {}
    for s in ("left", "right"):
        pos, rot, go, hp = hw[s]
        go_c, trans_c = M.world_to_camera(E, rot, pos)
        hands[s] = HandTrack.from_params(go_c, hp, betas, trans_c)
        wrist_cam[s] = trans_c

    text = describe(rng, [ph for p in plans.values() for ph in p.phases], w.objects, ("left", "right"), ws, S, wrist_cam, np.arange(T) / fps)

    labels = None
    frames = Frames()
    if cfg.frames:
        rgb, labels = _render(rng, w, verts_w, wrists, obj_pose, K, E, cfg)
        if cfg.image_format == "mp4":
            from ..video import encode_mp4

            frames = Frames("mp4", np.arange(T, dtype=np.int64), encode_mp4(rgb, fps))
        else:
            from ..video import encode_jpeg

            frames = Frames("jpeg", None, [encode_jpeg(f, 90) for f in rgb])

    camera = CameraTrack(np.tile(K, (T, 1)).astype(np.float64), int(cfg.size[0]), int(cfg.size[1]), E.astype(np.float64))
    meta = {
        "generator": "beingh0.data.synth", "generator_version": GENERATOR_VERSION, "base_seed": int(base_seed), "index": int(index),
        "scenario": scenario, "active_hand": active, "camera_kind": rig.kind, "hfov_deg": round(float(rig.hfov_deg), 2),
        "keypoints_in_view": round(in_view, 4), "speed": round(float(w.speed), 3), "plan_window_start_s": round(ws, 3),
        "objects": [{"name": o.name, "kind": o.kind, "color": o.color, "label": LABEL_OBJECT0 + i} for i, o in enumerate(w.objects)],
        "labels": {"left_hand": 1, "right_hand": 2, "left_arm": 3, "right_arm": 4, "objects_from": LABEL_OBJECT0},
        "hand_model": "embedded (not MANO)", "world_up": "+Y, table plane y=0",
        "synth_seconds": round(time.perf_counter() - t_start, 3),
    }
    eid = episode_id or f"synth_{int(base_seed)}_{int(index):06d}"
    ep = Episode(eid, "synthetic", LICENSE, fps, T, hands, camera, frames, text, meta).validate()
    return (ep, labels) if return_labels else ep


def _render(rng, w, verts_w, wrists, obj_pose, K, E, cfg):
    size = (int(cfg.size[0]), int(cfg.size[1]))
    T = E.shape[0]
    table, light = sample_table(rng), sample_light(rng)
    bg = sample_background(rng, (size[0] * cfg.supersample, size[1] * cfg.supersample))
    bg = bg[:: cfg.supersample, :: cfg.supersample] if cfg.supersample > 1 else bg
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.93, 1.07, 3), 0, 1)
    faces = hand_model("right").faces.numpy()
    faces_l = hand_model("left").faces.numpy()
    vcol = np.clip(skin[None] * (1 + rng.normal(0, 0.03, (778, 1))), 0, 1)
    sleeve = skin if rng.random() < 0.4 else np.clip(rng.uniform(0.05, 0.9, 3), 0, 1)
    arm_v, arm_f = forearm_mesh(length=rng.uniform(0.2, 0.28))
    arm_l = arm_v * np.array([-1.0, 1.0, 1.0])
    arm_fl = arm_f[:, ::-1].copy()
    out_rgb = np.empty((T, size[1], size[0], 3), np.uint8)
    out_lab = np.empty((T, size[1], size[0]), np.uint8)
    sub_obj = [np.arange(0, len(o.verts), 8) for o in w.objects]
    cache: dict = {}
    for t in range(T):
        Rw2c, c = E[t, :3, :3].T, E[t, :3, 3]
        meshes, shadow = [], []
        for s in ("left", "right"):
            V = verts_w[s][t]
            meshes.append(Mesh((V - c) @ Rw2c.T, faces if s == "right" else faces_l, vcol, LABEL_HAND[s]))
            shadow.append(V[::24])
        for s in ("left", "right"):  # forearms: rigid with the wrist frame
            wr, Rh = wrists[s][0][t], wrists[s][1][t]
            av = (arm_v if s == "right" else arm_l) @ Rh.T + wr
            meshes.append(Mesh((av - c) @ Rw2c.T, arm_f if s == "right" else arm_fl, sleeve, LABEL_ARM[s]))
            shadow.append(av[::8])
        for i, o in enumerate(w.objects):
            P = obj_pose[i, t]
            Vw = o.verts @ P[:3, :3].T + P[:3, 3]
            meshes.append(Mesh((Vw - c) @ Rw2c.T, o.faces, o.rgb, LABEL_OBJECT0 + i, closed=o.closed))
            shadow.append(Vw[sub_obj[i]])
        out_rgb[t], out_lab[t] = render_frame(meshes, K, E[t], size, table, bg, light, np.concatenate(shadow),
                                              supersample=cfg.supersample, noise_std=0.008, rng=rng, cache=cache)
    return out_rgb, out_lab

