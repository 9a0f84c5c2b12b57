"""Plain-torch reference of the MANO forward pass: the readable spec every kernel is tested against.

Pure functions, float64-capable and differentiable everywhere, including at zero rotation angle.
Shapes are in the docstrings; steps are numbered as in the SMPL/MANO papers (Loper et al. 2015,
Romero et al. 2017): 1 shape blend, 2 joint regression, 3 pose blend, 4 kinematic chain, 5 skinning.
"""
from __future__ import annotations

import torch

from .constants import KEYPOINT_ORDER, PARENTS
from .rotations import rodrigues  # noqa: F401  (re-exported: the LBS reference's rotation)


def pose_features(rotmats: torch.Tensor) -> torch.Tensor:
    """(B, 16, 3, 3) joint rotations -> (B, 135) pose-corrective features flatten(R_k - I), k=1..15."""
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    return (rotmats[:, 1:] - eye).reshape(rotmats.shape[0], 9 * (rotmats.shape[1] - 1))  # no -1: B may be 0


def kinematic_chain(rotmats: torch.Tensor, joints: torch.Tensor):
    """Rigid transforms along MANO's tree.

    rotmats (B, 16, 3, 3), rest joints (B, 16, 3) -> (posed joints (B, 16, 3),
    skinning transforms A (B, 16, 3, 4)), where A_k maps a rest-pose point to its posed position
    under joint k alone: A_k = [G_k R | G_k t - G_k R J_k].
    """
    rots, locs = [], []
    for k, p in enumerate(PARENTS):
        if p < 0:
            rots.append(rotmats[:, k])
            locs.append(joints[:, k])
        else:
            rots.append(rots[p] @ rotmats[:, k])
            locs.append(locs[p] + (rots[p] @ (joints[:, k] - joints[:, p])[..., None])[..., 0])
    G_R = torch.stack(rots, 1)                      # (B, 16, 3, 3)
    G_t = torch.stack(locs, 1)                      # (B, 16, 3): posed joint positions
    t = G_t - (G_R @ joints[..., None])[..., 0]     # remove the rest joint location
    return G_t, torch.cat([G_R, t[..., None]], -1)


def mano_lbs(
    betas: torch.Tensor,
    pose: torch.Tensor,
    trans: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    weights: torch.Tensor,
    joint_template: torch.Tensor,
    joint_shapedirs: torch.Tensor,
    tip_ids,
    trans_mode: int = 0,
    with_vertices: bool = True,
):
    """MANO forward kinematics and linear blend skinning.

    Args:
        betas: (B, S) or (1, S) shape coefficients (one row is shared by the whole batch).
        pose: (B, 48) full axis-angle pose: global_orient (3) then hand_pose (45), native order.
        trans: (B, 3). trans_mode 0: position of the posed wrist joint (Being-H0);
            1: added to the un-centred mesh (smplx's ``transl``).
        v_template (V, 3), shapedirs (V, 3, S), posedirs (V, 3, 135), weights (V, 16): model
            arrays in MANO's layout.
        joint_template (16, 3) = J_regressor @ v_template and joint_shapedirs (16, 3, S) =
            J_regressor @ shapedirs: joint regression folded into the shape space. This is exact
            (regression is linear) and is what smplx computes as J_regressor @ v_shaped.
        tip_ids: 5 vertex ids (thumb, index, middle, ring, pinky tips).
        with_vertices: if False, only the 5 tip vertices are skinned (what ``mano_joints`` does).

    Returns:
        vertices (B, V, 3) (or None) and keypoints (B, 21, 3) in Being-H0 order.
    """
    B = pose.shape[0]
    tip_ids = torch.as_tensor(tip_ids, dtype=torch.long, device=pose.device)
    # 1. shape blend shapes, 2. rest joints (regressed from the shaped template)
    v_shaped = v_template + torch.einsum("vcs,bs->bvc", shapedirs, betas)       # (B|1, V, 3)
    J = joint_template + torch.einsum("jcs,bs->bjc", joint_shapedirs, betas)       # (B|1, 16, 3)
    v_shaped, J = v_shaped.expand(B, -1, -1), J.expand(B, -1, -1)
    # 3. pose blend shapes
    R = rodrigues(pose.reshape(B, 16, 3))                                        # (B, 16, 3, 3)
    if not with_vertices:
        v_shaped, posedirs, weights = v_shaped[:, tip_ids], posedirs[tip_ids], weights[tip_ids]
        tip_ids = torch.arange(5, device=pose.device)
    v_posed = v_shaped + torch.einsum("vcp,bp->bvc", posedirs, pose_features(R))
    # 4. kinematic chain, 5. skinning
    J_posed, A = kinematic_chain(R, J)
    T = torch.einsum("vk,bkij->bvij", weights, A)                                # (B, V, 3, 4)
    verts = (T[..., :3] @ v_posed[..., None])[..., 0] + T[..., 3]
    offset = trans[:, None] - (J[:, :1] if trans_mode == 0 else 0)
    verts = verts + offset
    keypoints = torch.cat([J_posed + offset, verts[:, tip_ids]], 1)[:, list(KEYPOINT_ORDER)]
    return (verts if with_vertices else None), keypoints
