"""The ``mano`` op family: MANO forward kinematics + skinning behind one Python face.

``mano_forward``: (betas, pose, trans) -> vertices (B, V, 3) and 21 keypoints (B, 21, 3).
``mano_joints``: the 21 keypoints only; the caller passes the constants of the 5 fingertip
vertices (``ManoConstants.tips()``), so no other vertex is ever skinned.

Backends (``beingh0.ops.Backend``): the plain-torch reference (``beingh0.core.lbs``, differentiated
by autograd), C++ CPU and CUDA kernels (``csrc/mano``), and Triton (``beingh0/kernels/mano.py``, forward
only). The kernel backends run through the ``beingh0::mano_lbs`` custom op (fake implementation,
autograd); its backward is our own backward kernel (``beingh0::mano_lbs_backward``), and Triton's
forward pairs with the same backward math in C++ (CPU, interpreter) or CUDA.

Dispatch overhead: a call goes through argument checks, backend resolution and the binding; the
custom-op dispatcher (autograd, torch.compile) is entered only when a gradient is needed or under
compile. A hot loop that has already validated its inputs can pass ``check=False``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch

from ..core import lbs
from ..core.constants import NUM_JOINTS, NUM_KEYPOINTS, NUM_POSE_FEATS
from ..core.errors import UserValueError
from ._scaffold import DTYPE_CODES, call_op, launch, new_output
from .backend import Backend, load_kernel_module, resolve

__all__ = ["ManoConstants", "ManoOutput", "mano_forward", "mano_joints", "mano_forward_reference",
           "mano_joints_reference"]

_SUPPORTED = (Backend.REFERENCE, Backend.CPP, Backend.CUDA, Backend.TRITON)
_INPUT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class ManoOutput(NamedTuple):
    vertices: torch.Tensor
    """(B, V, 3) in the inputs' dtype."""
    keypoints: torch.Tensor
    """(B, 21, 3), Being-H0 order."""


@dataclass(frozen=True)
class ManoConstants:
    """Model arrays packed for the kernels (layout: ``csrc/README.md``). All C-contiguous.

    v_template (V, 3); shapedirs_t (S, V*3); posedirs_t (135, V*3); j_template (16, 3);
    j_shapedirs_t (S, 48); weights (V, 16); tip_ids (5,) int32 rows within these V vertices.
    The float arrays share one dtype (float32 or float64) and every array one device; construction
    checks all of it (the kernels read these buffers by the sizes V and S), a mismatch is a
    ``ValueError`` naming the array.
    """

    v_template: torch.Tensor
    shapedirs_t: torch.Tensor
    posedirs_t: torch.Tensor
    j_template: torch.Tensor
    j_shapedirs_t: torch.Tensor
    weights: torch.Tensor
    tip_ids: torch.Tensor
    tips_only: bool = False
    """True for the 5-fingertip-vertex constants made by ``tips()``."""

    def __post_init__(self):
        _check_constants(self)

    @staticmethod
    def from_arrays(v_template, shapedirs, posedirs, J_regressor, weights, tip_ids, *, device=None, dtype=torch.float32):
        """Pack MANO-layout arrays: v_template (V,3), shapedirs (V,3,S), posedirs (V,3,135), J_regressor (16,V), weights (V,16)."""
        f = lambda x: torch.as_tensor(x, dtype=torch.float64)  # pack in float64, then cast once
        vt, sd, pd, jr, w = f(v_template), f(shapedirs), f(posedirs), f(J_regressor), f(weights)
        V, S = vt.shape[0], sd.shape[-1]
        packed = dict(
            v_template=vt,
            shapedirs_t=sd.reshape(V * 3, S).T,
            posedirs_t=pd.reshape(V * 3, NUM_POSE_FEATS).T,
            j_template=jr @ vt,
            j_shapedirs_t=torch.einsum("jv,vcs->sjc", jr, sd).reshape(S, NUM_JOINTS * 3),
            weights=w,
        )
        tips = torch.as_tensor(tip_ids, dtype=torch.int64).cpu()
        if tips.shape != (5,) or int(tips.min()) < 0 or int(tips.max()) >= V:
            # checked here, once, on the CPU: the CUDA and Triton kernels trust these indices
            raise UserValueError(f"tip_ids must be 5 vertex ids in [0, {V}), got {tips.tolist()}")
        out = {k: v.to(device=device, dtype=dtype).contiguous() for k, v in packed.items()}
        out["tip_ids"] = tips.to(device=device, dtype=torch.int32).contiguous()
        return ManoConstants(**out)

    def tips(self) -> "ManoConstants":
        """The constants of the 5 fingertip vertices only (what ``mano_joints`` takes)."""
        if self.tips_only:
            return self
        idx = self.tip_ids.long()
        cols = (idx[:, None] * 3 + torch.arange(3, device=idx.device)).reshape(-1)
        return ManoConstants(
            v_template=self.v_template[idx].contiguous(),
            shapedirs_t=self.shapedirs_t[:, cols].contiguous(),
            posedirs_t=self.posedirs_t[:, cols].contiguous(),
            j_template=self.j_template,
            j_shapedirs_t=self.j_shapedirs_t,
            weights=self.weights[idx].contiguous(),
            tip_ids=torch.arange(5, dtype=torch.int32, device=idx.device),
            tips_only=True,
        )

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.v_template, self.shapedirs_t, self.posedirs_t, self.j_template, self.j_shapedirs_t,
                self.weights, self.tip_ids)

    @property
    def num_verts(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_betas(self) -> int:
        return self.shapedirs_t.shape[0]


# --------------------------------------------------------------------------------------------
# validation (before any launch)

_CONST_NAMES = ("v_template", "shapedirs_t", "posedirs_t", "j_template", "j_shapedirs_t", "weights", "tip_ids")


def _check_constants(c: ManoConstants) -> None:
    """Shapes, dtypes, devices and layout of the packed arrays, against each other (no data read)."""
    ts = c.tensors()
    for name, t in zip(_CONST_NAMES, ts):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"ManoConstants: {name} must be a torch.Tensor, got {type(t).__name__}")
    vt = c.v_template
    if vt.dim() != 2 or vt.shape[1] != 3 or vt.shape[0] < 1:
        raise UserValueError(f"ManoConstants: v_template must have shape (V, 3) with V >= 1, got {tuple(vt.shape)}")
    V = vt.shape[0]
    S = c.shapedirs_t.shape[0] if c.shapedirs_t.dim() == 2 else -1
    want = {"shapedirs_t": (S, 3 * V), "posedirs_t": (NUM_POSE_FEATS, 3 * V), "j_template": (NUM_JOINTS, 3),
            "j_shapedirs_t": (S, 3 * NUM_JOINTS), "weights": (V, NUM_JOINTS), "tip_ids": (5,)}
    hint = " (ManoConstants.from_arrays or ManoModel.constants pack them)"
    for name, t in zip(_CONST_NAMES[1:], ts[1:]):
        if tuple(t.shape) != want[name] or S < 0:
            shape = "(S, V*3)" if name == "shapedirs_t" else str(want[name])
            raise UserValueError(f"ManoConstants: {name} must have shape {shape} = {want[name]} for V = {V} vertices"
                                 f"{f' and S = {S} shape coefficients' if S >= 0 else ''}, got {tuple(t.shape)}{hint}")
    if vt.dtype not in (torch.float32, torch.float64):
        raise UserValueError(f"ManoConstants: the model arrays must be float32 or float64, got v_template {vt.dtype}")
    for name, t in zip(_CONST_NAMES[1:-1], ts[1:-1]):
        if t.dtype != vt.dtype:
            raise UserValueError(f"ManoConstants: {name} is {t.dtype} but v_template is {vt.dtype}; every model array "
                                 f"must have one dtype{hint}")
    if c.tip_ids.dtype != torch.int32:
        raise UserValueError(f"ManoConstants: tip_ids must be int32 (the kernels read 32-bit ids), got "
                             f"{c.tip_ids.dtype}; use tip_ids.to(torch.int32)")
    for name, t in zip(_CONST_NAMES, ts):
        if t.device != vt.device:
            raise UserValueError(f"ManoConstants: {name} is on {t.device} but v_template on {vt.device}; put every "
                                 "model array on one device")
        if not t.is_contiguous():
            raise UserValueError(f"ManoConstants: {name} must be contiguous (call .contiguous())")


def _check_tip_ids(op: str, c: ManoConstants) -> None:
    """tip_ids within [0, V): reads the data (a device sync on CUDA), so only with check=True, and once
    per constants object (until tip_ids is modified in place)."""
    if torch.compiler.is_compiling() or c.__dict__.get("_tips_checked") == c.tip_ids._version:
        return
    lo, hi = int(c.tip_ids.min()), int(c.tip_ids.max())
    if lo < 0 or hi >= c.num_verts:
        raise UserValueError(f"{op}: model constant tip_ids must be vertex ids in [0, {c.num_verts}), got "
                             f"{c.tip_ids.tolist()}")
    object.__setattr__(c, "_tips_checked", c.tip_ids._version)  # a cache, not a field


def _check_inputs(op: str, betas, pose, trans, c: ManoConstants, trans_mode: int, check_finite: bool):
    for name, t in (("pose", pose), ("betas", betas), ("trans", trans)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _INPUT_DTYPES:
            raise TypeError(f"{op}: {name} has dtype {t.dtype}; expected float32, float64, float16 or bfloat16")
        if t.device != pose.device:
            raise ValueError(f"{op}: {name} is on {t.device} but pose is on {pose.device}; put all inputs on one device")
        if t.dtype != pose.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but pose has {pose.dtype}; cast them to one dtype")
    if pose.dim() != 2 or pose.shape[1] != 3 * NUM_JOINTS:
        raise ValueError(f"{op}: pose must have shape (B, 48) (global_orient + 45 hand_pose axis-angle), got {tuple(pose.shape)}")
    B = pose.shape[0]
    if trans.shape != (B, 3):
        raise ValueError(f"{op}: trans must have shape ({B}, 3), got {tuple(trans.shape)}")
    S = c.num_betas
    if betas.dim() != 2 or betas.shape[1] != S or betas.shape[0] not in (1, B):
        raise ValueError(f"{op}: betas must have shape ({B}, {S}) or (1, {S}) (shared by the batch), got {tuple(betas.shape)}")
    if trans_mode not in (0, 1):
        raise ValueError(f"{op}: trans_mode must be 0 (Being-H0 wrist) or 1 (smplx transl), got {trans_mode}")
    # the constants are consistent among themselves (ManoConstants.__post_init__): one device, one dtype
    if c.v_template.device != pose.device:
        raise ValueError(f"{op}: the model constants are on {c.v_template.device} but the inputs are on {pose.device}; "
                         "use ManoModel.to(device) or constants for the inputs' device")
    want = torch.float64 if pose.dtype == torch.float64 else torch.float32
    if c.v_template.dtype != want:
        raise TypeError(f"{op}: constants are {c.v_template.dtype} but {pose.dtype} inputs need {want} constants "
                        f"(ManoModel.constants(device, dtype) builds them)")
    if check_finite:
        _check_tip_ids(op, c)
        for name, t in (("betas", betas), ("pose", pose), ("trans", trans)):
            if t.numel() and not bool(torch.isfinite(t).all()):
                bad = (~torch.isfinite(t)).nonzero()[0].tolist()
                raise ValueError(f"{op}: {name} contains NaN or inf (first at index {bad}); clean the input "
                                 "(e.g. interpolate gaps with beingh0.mano.fit.interpolate_gaps)")


# --------------------------------------------------------------------------------------------
# reference (plain torch, float64-capable, differentiated by autograd)


def mano_forward_reference(betas, pose, trans, constants: ManoConstants, *, trans_mode: int = 0,
                           with_vertices: bool = True) -> ManoOutput:
    """The spec of every backend: ``beingh0.core.lbs.mano_lbs`` on the packed constants, computed in
    the inputs' dtype (float32 for float16/bfloat16 inputs). ``with_vertices=False``: vertices (B, 0, 3)."""
    c = constants
    V, S = c.num_verts, c.num_betas
    cdt = pose.dtype if pose.dtype in (torch.float32, torch.float64) else torch.float32
    cast = lambda t: t.to(cdt)
    verts, kp = lbs.mano_lbs(
        cast(betas), cast(pose), cast(trans),
        v_template=cast(c.v_template), shapedirs=cast(c.shapedirs_t).T.reshape(V, 3, S),
        posedirs=cast(c.posedirs_t).T.reshape(V, 3, NUM_POSE_FEATS), weights=cast(c.weights),
        joint_template=cast(c.j_template), joint_shapedirs=cast(c.j_shapedirs_t).T.reshape(NUM_JOINTS, 3, S),
        tip_ids=c.tip_ids.long(), trans_mode=trans_mode, with_vertices=with_vertices,
    )
    if verts is None:
        verts = kp.new_empty(pose.shape[0], 0, 3)
    return ManoOutput(verts.to(pose.dtype), kp.to(pose.dtype))


def mano_joints_reference(betas, pose, trans, constants: ManoConstants, *, trans_mode: int = 0) -> torch.Tensor:
    """The 21 keypoints of ``mano_forward_reference`` (only the fingertip vertices skinned)."""
    return mano_forward_reference(betas, pose, trans, constants, trans_mode=trans_mode, with_vertices=False).keypoints


# --------------------------------------------------------------------------------------------
# kernel backends: the bodies of the custom ops (same signatures), also called directly when eager


def _forward_impl(betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t, weights,
                  tip_ids, trans_mode: int, with_vertices: bool, backend: str):
    consts = (v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t, weights, tip_ids)
    b = Backend(backend)
    B, V, S = pose.shape[0], v_template.shape[0], shapedirs_t.shape[0]
    if b is Backend.TRITON:  # allocates its own outputs
        v, k = load_kernel_module("mano").mano_lbs_triton(betas, pose, trans, *consts, trans_mode, with_vertices)
        return (v if v is not None else pose.new_empty(B, 0, 3)), k
    verts = new_output((B, V if with_vertices else 0, 3), pose.dtype, pose.device)
    kp = new_output((B, NUM_KEYPOINTS, 3), pose.dtype, pose.device)
    if B == 0:
        return verts, kp
    betas, pose, trans = betas.contiguous(), pose.contiguous(), trans.contiguous()
    launch("mano_forward", b, pose.device, DTYPE_CODES[pose.dtype], betas.data_ptr(), betas.shape[0], pose.data_ptr(),
           trans.data_ptr(), *[t.data_ptr() for t in consts], B, V, S, trans_mode,
           verts.data_ptr() if with_vertices else 0, kp.data_ptr())
    return verts, kp


def _backward_impl(grad_verts, grad_keypoints, betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template,
                   j_shapedirs_t, weights, tip_ids, trans_mode: int, with_vertices: bool, backend: str):
    consts = (v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t, weights, tip_ids)
    b = Backend(backend)
    B, V, S = pose.shape[0], v_template.shape[0], shapedirs_t.shape[0]
    g_betas = new_output(betas.shape, betas.dtype, betas.device)
    g_pose, g_trans = new_output(pose.shape, pose.dtype, pose.device), new_output(trans.shape, trans.dtype, trans.device)
    if B == 0:
        return g_betas.zero_(), g_pose, g_trans
    betas, pose, trans = betas.contiguous(), pose.contiguous(), trans.contiguous()
    # No vertex gradient: the kernels' keypoint-only backward (the 5 fingertip vertices, not all V)
    gv = grad_verts.contiguous() if (with_vertices and grad_verts is not None) else None
    gk = grad_keypoints.contiguous() if grad_keypoints is not None else None
    launch("mano_backward", b, pose.device, DTYPE_CODES[pose.dtype], gv.data_ptr() if gv is not None else 0,
           gk.data_ptr() if gk is not None else 0, betas.data_ptr(), betas.shape[0], pose.data_ptr(), trans.data_ptr(),
           *[t.data_ptr() for t in consts], B, V, S, trans_mode, g_betas.data_ptr(), g_pose.data_ptr(),
           g_trans.data_ptr())
    return g_betas, g_pose, g_trans


# --------------------------------------------------------------------------------------------
# custom ops


@torch.library.custom_op("beingh0::mano_lbs", mutates_args=())
def _mano_lbs_op(
    betas: torch.Tensor, pose: torch.Tensor, trans: torch.Tensor,
    v_template: torch.Tensor, shapedirs_t: torch.Tensor, posedirs_t: torch.Tensor, j_template: torch.Tensor,
    j_shapedirs_t: torch.Tensor, weights: torch.Tensor, tip_ids: torch.Tensor,
    trans_mode: int, with_vertices: bool, backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _forward_impl(betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t, weights,
                         tip_ids, trans_mode, with_vertices, backend)


@_mano_lbs_op.register_fake
def _(betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t, weights, tip_ids,
      trans_mode, with_vertices, backend):
    B = pose.shape[0]
    V = v_template.shape[0] if with_vertices else 0
    return pose.new_empty(B, V, 3), pose.new_empty(B, NUM_KEYPOINTS, 3)


@torch.library.custom_op("beingh0::mano_lbs_backward", mutates_args=())
def _mano_lbs_backward_op(
    grad_verts: Optional[torch.Tensor], grad_keypoints: torch.Tensor,
    betas: torch.Tensor, pose: torch.Tensor, trans: torch.Tensor,
    v_template: torch.Tensor, shapedirs_t: torch.Tensor, posedirs_t: torch.Tensor, j_template: torch.Tensor,
    j_shapedirs_t: torch.Tensor, weights: torch.Tensor, tip_ids: torch.Tensor,
    trans_mode: int, with_vertices: bool, backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _backward_impl(grad_verts, grad_keypoints, betas, pose, trans, v_template, shapedirs_t, posedirs_t,
                          j_template, j_shapedirs_t, weights, tip_ids, trans_mode, with_vertices, backend)


@_mano_lbs_backward_op.register_fake
def _(grad_verts, grad_keypoints, betas, pose, trans, *rest):
    return torch.empty_like(betas), torch.empty_like(pose), torch.empty_like(trans)


def _setup_context(ctx, inputs, output):
    betas, pose, trans, *consts, trans_mode, with_vertices, backend = inputs
    ctx.save_for_backward(betas, pose, trans, *consts)
    ctx.trans_mode, ctx.with_vertices, ctx.backend = trans_mode, with_vertices, backend
    # An output that the loss does not use gets None, not a materialised zero tensor: a loss on the
    # keypoints alone then takes the keypoint-only backward instead of the full V-vertex one.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_verts, grad_kp):
    betas, pose, trans, *consts = ctx.saved_tensors
    b = Backend(ctx.backend)
    if b is Backend.TRITON:  # Triton has no backward kernel: pair it with the same math in C++/CUDA
        b = Backend.CUDA if pose.is_cuda else Backend.CPP
    if grad_kp is None:
        grad_kp = pose.new_zeros(pose.shape[0], NUM_KEYPOINTS, 3)
    if not ctx.with_vertices:
        grad_verts = None
    gb, gp, gt = _mano_lbs_backward_op(grad_verts, grad_kp, betas, pose, trans, *consts,
                                       ctx.trans_mode, ctx.with_vertices, b.value)
    return (gb, gp, gt) + (None,) * 10


_mano_lbs_op.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------------------------
# public functions


def _run(op, betas, pose, trans, constants, trans_mode, with_vertices, backend, check) -> ManoOutput:
    if not isinstance(constants, ManoConstants):
        raise TypeError(f"{op}: constants must be a ManoConstants (ManoModel.constants(...)), got {type(constants).__name__}")
    _check_inputs(op, betas, pose, trans, constants, trans_mode, check)
    b = resolve(op, backend, pose.device.type, _SUPPORTED)
    if b is Backend.REFERENCE:  # plain torch, differentiated by autograd
        return mano_forward_reference(betas, pose, trans, constants, trans_mode=trans_mode, with_vertices=with_vertices)
    if b is Backend.CPP and pose.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: the C++ CPU kernels take float32 or float64, got {pose.dtype}; cast the inputs")
    v, k = call_op(_mano_lbs_op, _forward_impl, betas, pose, trans, *constants.tensors(), trans_mode, with_vertices,
                   b.value, differentiable=(betas, pose, trans))
    return ManoOutput(v, k)


def mano_forward(betas, pose, trans, constants: ManoConstants, *, trans_mode: int = 0, backend=None,
                 check: bool = True) -> ManoOutput:
    """MANO forward kinematics and skinning.

    Args:
        betas: (B, S) or (1, S) (one shape shared by the whole batch: the shaped template and the
            rest joints are then computed once).
        pose: (B, 48) axis-angle: global_orient then the 15 hand joints in MANO order.
        trans: (B, 3): the posed wrist position (trans_mode 0, Being-H0) or smplx's transl (1).
        constants: packed model arrays (``ManoModel.constants``).
        backend: None (``$BEINGH0_BACKEND`` or auto), or a ``Backend``/its name.
        check: also reject NaN/inf in the inputs and tip_ids outside the model (reads the data: a
            device sync on CUDA). Shapes, dtypes and devices of inputs and constants are always checked.

    Returns:
        ``ManoOutput(vertices (B, V, 3), keypoints (B, 21, 3))`` (Being-H0 order), in the inputs' dtype.
    """
    return _run("mano_forward", betas, pose, trans, constants, trans_mode, True, backend, check)


def mano_joints(betas, pose, trans, constants: ManoConstants, *, trans_mode: int = 0, backend=None, check: bool = True):
    """The 21 keypoints (B, 21, 3) without skinning the whole mesh: only the 5 fingertip vertices
    are computed. ``constants`` may be the full model's (the tip rows are taken) or ``.tips()``."""
    c = constants.tips() if isinstance(constants, ManoConstants) else constants
    return _run("mano_joints", betas, pose, trans, c, trans_mode, False, backend, check).keypoints
