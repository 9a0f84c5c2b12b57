"""Index tables of the MANO hand: kinematic tree, joint names, keypoint orders, fingertip vertices.

Everything here is data, no logic, so every module agrees on one joint order
(ENGINEERING.md section 3).
"""
from __future__ import annotations

NUM_VERTS = 778
NUM_FACES = 1538
NUM_JOINTS = 16          # MANO's articulated joints: wrist + 15 finger joints
NUM_BETAS = 10
NUM_POSE_FEATS = 135     # 15 joints x 9 entries of (R - I)
NUM_KEYPOINTS = 21

#: Parent of each of the 16 MANO joints (native order: wrist, index, middle, pinky, ring, thumb).
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)

#: Fingertip vertex ids (thumb, index, middle, ring, pinky). Being-H0, manopth and manotorch use
#: these; they are our default.
TIP_IDS_BEINGH0 = (745, 317, 444, 556, 673)
#: smplx's vertex_ids['mano'] fingertips (thumb, index, middle, ring, pinky).
TIP_IDS_SMPLX = (744, 320, 443, 554, 671)
TIP_CONVENTIONS = {"beingh0": TIP_IDS_BEINGH0, "smplx": TIP_IDS_SMPLX}

#: The 21 keypoints (Being-H0 / SNAP / OpenPose order) as indices into ``cat(joints16, tips5)``
#: where tips5 = (thumb, index, middle, ring, pinky) tips at rows 16..20:
#: 0 wrist; 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring; 17-20 pinky.
KEYPOINT_ORDER = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

KEYPOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

#: Parent of each of the 21 keypoints (for drawing skeletons and bone lengths).
KEYPOINT_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

#: Translation conventions. "wrist" (Being-H0, default): ``trans`` is the posed wrist joint's
#: position, i.e. output = wrist-centred mesh + trans. "smplx": ``transl`` is added to the
#: un-centred mesh, as smplx does.
TRANS_MODES = {"wrist": 0, "smplx": 1}
