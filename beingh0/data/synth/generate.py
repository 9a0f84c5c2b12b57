"""One synthetic episode from a seed: scene, bimanual motion, camera, rendering, language.

:func:`synth_episode` is deterministic in its arguments (numpy generators seeded from
``(base_seed, index)``; rendering and MANO evaluation are deterministic on CPU).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..episode import CameraTrack, Episode, Frames, HandTrack
from . import motion as M
from .language import describe
from .raster import Mesh, render_frame
from .scene import COLORS, SKIN_TONES, forearm_mesh, make_object, pose_matrix, sample_background, sample_camera, sample_light, sample_table

GENERATOR_VERSION = 1
LICENSE = "CC0-1.0"
#: Labels in the renderer's label buffer.
LABEL_HAND = {"left": 1, "right": 2}
LABEL_ARM = {"left": 3, "right": 4}
LABEL_OBJECT0 = 10
SCENARIOS = ("pick_place", "pour", "press", "open_jar", "bimanual_pick")
_MODELS: dict = {}


def hand_model(side: str):
    from ...mano.model import ManoModel

    if side not in _MODELS:
        _MODELS[side] = ManoModel.embedded(side)
    return _MODELS[side]


@dataclass
class SynthConfig:
    seconds: float = 2.0
    fps: float = 15.0
    size: tuple[int, int] = (256, 256)  # (width, height)
    frames: bool = True  # False: motion-only episodes (no rendering)
    image_format: str = "mp4"  # "mp4" | "jpeg"
    supersample: int = 1
    scenario: str | None = None  # force one of SCENARIOS

    def validate(self) -> "SynthConfig":
        if not (self.seconds > 0 and np.isfinite(self.seconds)):
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if self.fps not in (15, 15.0, 30, 30.0):
            raise ValueError(f"fps must be 15 (Being-H0's rate) or 30, got {self.fps}")
        w, h = self.size
        if not (16 <= int(w) <= 4096 and 16 <= int(h) <= 4096):
            raise ValueError(f"size must be between 16x16 and 4096x4096 pixels, got {w}x{h}")
        if self.image_format not in ("mp4", "jpeg"):
            raise ValueError(f"image_format must be 'mp4' or 'jpeg', got {self.image_format!r}")
        if self.scenario is not None and self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {self.scenario!r}")
        if int(self.supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {self.supersample}")
        return self


def _colors(rng, n):
    names = list(COLORS)
    return [names[i] for i in rng.permutation(len(names))[:n]]


def _build_world(rng, scenario: str):
    """Objects, their initial poses and the hands' plans for one scenario."""
    betas = np.clip(rng.normal(0, 0.7, 10), -2.0, 2.0)
    kin = {s: M.HandKinematics(hand_model(s), betas) for s in ("left", "right")}
    rest = {"right": np.array([rng.uniform(0.15, 0.24), 0.035, rng.uniform(0.2, 0.27)]),
            "left": np.array([-rng.uniform(0.15, 0.24), 0.035, rng.uniform(0.2, 0.27)])}
    active = "right" if rng.random() < 0.65 else "left"
    sx = 1.0 if active == "right" else -1.0
    n_distract = int(rng.integers(0, 3))
    kinds = {
        "pick_place": [str(rng.choice(["cup", "can", "bottle", "box", "block", "ball"]))] + (["plate"] if rng.random() < 0.5 else []),
        "pour": [str(rng.choice(["cup", "bottle"])), "bowl"],
        "press": ["button"],
        "open_jar": ["jar", "lid"],
        "bimanual_pick": [str(rng.choice(["cup", "can", "block", "ball", "box"])), str(rng.choice(["cup", "can", "block", "ball", "box"]))],
    }[scenario]
    kinds = kinds + [str(rng.choice(["cup", "can", "box", "block", "ball", "bottle"])) for _ in range(n_distract)]
    cols = _colors(rng, len(kinds))
    objects = [make_object(k, rng, c) for k, c in zip(kinds, cols)]
    # positions: the manipulated object on the active hand's side
    fixed = {}
    if scenario == "bimanual_pick":
        fixed[0] = pose_matrix([-rng.uniform(0.08, 0.2), 0.0, rng.uniform(-0.16, -0.02)], rng.uniform(-np.pi, np.pi))
        fixed[1] = pose_matrix([rng.uniform(0.08, 0.2), 0.0, rng.uniform(-0.16, -0.02)], rng.uniform(-np.pi, np.pi))
    else:
        fixed[0] = pose_matrix([sx * rng.uniform(0.03, 0.17), 0.0, rng.uniform(-0.16, -0.02)], rng.uniform(-np.pi, np.pi))
        if scenario == "open_jar":
            fixed[1] = pose_matrix(fixed[0][:3, 3] + [0.0, objects[0].height, 0.0], rng.uniform(-np.pi, np.pi))
    init = M.place_objects(rng, objects, fixed=fixed)
    w = M.World(objects, init, rest, kin, rng, speed=float(rng.uniform(0.75, 1.35)))
    plans = {s: M.HandPlan(s, *M.rest_pose(w, s), M.SYNERGIES["relaxed"]) for s in ("left", "right")}
    for s in plans:
        plans[s].add(rng.uniform(0.0, 0.4), "rest")
    other = "left" if active == "right" else "right"
    tasks = []
    if scenario == "pick_place":
        onto = 1 if len(kinds) > 1 and kinds[1] == "plate" else None
        if onto is not None:
            dest = init[1][:3, 3] + [0.0, objects[1].height, 0.0]
        else:
            dest = M.free_spot(rng, objects, init, objects[0].radius, (-0.22, 0.22), (-0.2, -0.02))
        tasks.append(M.task_pick_place(w, plans[active], 0, dest, onto))
    elif scenario == "pour":
        if rng.random() < 0.35:
            tasks.append(M.task_hold(w, plans[other], 1, until=6.0))
        tasks.append(M.task_pour(w, plans[active], 0, 1))
    elif scenario == "press":
        tasks.append(M.task_press(w, plans[active], 0))
    elif scenario == "open_jar":
        hold = rng.random() < 0.7
        if hold:
            tasks.append(M.task_hold(w, plans[other], 0, until=0.0))
        dest = M.free_spot(rng, objects, init, objects[1].radius, (-0.22, 0.22), (-0.2, -0.02))
        tasks.append(M.task_open_jar(w, plans[active], 1, dest))
        if hold:  # the steadying hand lets go once the lid is off: rebuild its plan with that timing
            plans[other] = M.HandPlan(other, *M.rest_pose(w, other), M.SYNERGIES["relaxed"])
            plans[other].add(rng.uniform(0.0, 0.3), "rest")
            t_lid_off = next(p.t1 for p in plans[active].phases if p.name == "lift")
            tasks[0] = M.task_hold(w, plans[other], 0, until=t_lid_off)
    else:
        tasks.append(M.task_pick_place(w, plans["left"], 0, M.free_spot(rng, objects, init, objects[0].radius, (-0.24, 0.0), (-0.2, -0.02))))
        plans["right"].add(rng.uniform(0.0, 1.2), "rest")
        tasks.append(M.task_pick_place(w, plans["right"], 1, M.free_spot(rng, objects, init, objects[1].radius, (0.0, 0.24), (-0.2, -0.02))))
    return w, plans, betas, tasks, active


def _hand_world(side, plan, times, betas, rng, breathe=True):
    pos, rot, pose = plan.sample(times)
    if breathe:
        pos = pos + M.breathing(times, rng, 0.002)
    P = torch.as_tensor(pose.reshape(len(times), 45))
    if side == "left":
        from ...mano.model import mirror_pose

        P = mirror_pose(P)
    go = Rotation.from_matrix(rot).as_rotvec()
    return pos, rot, go, P.numpy()


def _mano(side, betas, go, hp, trans):
    m = hand_model(side)
    out = m(torch.as_tensor(betas, dtype=torch.float64)[None], torch.as_tensor(go, dtype=torch.float64),
            torch.as_tensor(hp, dtype=torch.float64), torch.as_tensor(trans, dtype=torch.float64))
    return out.vertices.numpy(), out.keypoints.numpy()


def _fit_camera(rig, pts_world, T, fps, size, min_in=0.95):
    """Pull the camera back (and widen its view) until most hand keypoints are in the image."""
    W, H = size
    for _ in range(14):
        K = rig.intrinsics(size)
        E = rig.cam_to_world(T, fps)
        Rw2c = np.swapaxes(E[:, :3, :3], 1, 2)
        pc = np.einsum("tij,tnj->tni", Rw2c, pts_world - E[:, None, :3, 3])
        z = pc[..., 2]
        u = K[0] * pc[..., 0] / np.maximum(z, 1e-6) + K[2]
        v = K[1] * pc[..., 1] / np.maximum(z, 1e-6) + K[3]
        inside = (z > 0.08) & (u > 0.03 * W) & (u < 0.97 * W) & (v > 0.03 * H) & (v < 0.97 * H)
        if inside.mean() >= (min_in - 0.05 if rig.kind == "ego" else min_in):
            break
        if rig.hfov_deg < 100 and rig.kind == "ego":
            rig.hfov_deg = min(rig.hfov_deg + 8, 120)
        else:
            rig.pull_back(1.12)
    return rig.intrinsics(size), rig.cam_to_world(T, fps), float(inside.mean())


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
    w, plans, betas, tasks, active = _build_world(rng, scenario)
    fps = float(cfg.fps)
    T = max(1, int(round(cfg.seconds * fps)))
    S = T / fps
    D = max(p.t for p in plans.values())
    ws = float(rng.uniform(0, D - S)) if D > S else -float(rng.uniform(0, (S - D) * 0.6))
    for p in plans.values():
        p.finish(max(D, ws + S) + 0.01)
    times = ws + np.arange(T) / fps

    # hands in the world
    hw = {s: _hand_world(s, plans[s], times, betas, rng) for s in ("left", "right")}
    wrists = {s: (hw[s][0], hw[s][1]) for s in hw}
    obj_pose = M.object_poses(w.objects, w.init, plans, times, wrists)
    verts_w, kp_w = {}, {}
    for s in ("left", "right"):
        verts_w[s], kp_w[s] = _mano(s, betas, hw[s][2], hw[s][3], hw[s][0])

    # camera
    workspace = np.mean([P[:3, 3] for P in w.init], 0) * np.array([1.0, 0.0, 1.0])
    rig = sample_camera(rng, workspace)
    pts = np.concatenate([kp_w["left"], kp_w["right"]], 1)
    K, E, in_view = _fit_camera(rig, pts, T, fps, cfg.size)
    Rw2c = np.swapaxes(E[:, :3, :3], 1, 2)
    cpos = E[:, :3, 3]

    hands = {}
    wrist_cam = {}
    for s in ("left", "right"):
        pos, rot, go, hp = hw[s]
        trans_c = np.einsum("tij,tj->ti", Rw2c, pos - cpos)
        go_c = Rotation.from_matrix(Rw2c @ rot).as_rotvec()
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

