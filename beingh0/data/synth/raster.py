"""Headless CPU renderer for the synthetic source: z-buffered triangles over an analytic table.

No OpenGL, no GPU: numpy only. A frame is rendered in three vectorised passes:

1. **Table and background**, analytically: every pixel's ray (OpenCV camera) is intersected with
   the table plane ``y = 0`` of the world (+Y up); hits inside the table rectangle get a procedural
   texture in world coordinates (so it stays put when the camera moves) and soft contact shadows;
   the rest shows the background image. The table depth initialises the z-buffer.
2. **Triangles** (hands, forearms, objects): per-triangle integer bounding boxes, bucketed by
   power-of-two size, so that each bucket evaluates barycentrics for all its (triangle, pixel)
   pairs in one batch; depth and attributes are interpolated perspective-correctly; the nearest
   candidate per pixel wins (one sort). Back faces of closed meshes are culled.
3. **Shading**: Lambert (a key light from above, a weaker camera fill light) plus ambient, on
   interpolated vertex normals, two-sided for open meshes (cups, bowls).

Pixel centres sit at integer coordinates (OpenCV): a camera-frame point projects to
``u = fx x / z + cx`` and lands on pixel ``round(u)``. Besides the RGB image the renderer returns a
label buffer (``uint8``, 0 = table/background, otherwise the ``label`` of the mesh seen there),
which the tests use to check that projected keypoints land on the hand they belong to.
``supersample=s`` renders at ``s`` times the size and box-filters down (anti-aliasing).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NEAR = 0.02  # metres: triangles with a vertex closer than this to the camera plane are dropped


@dataclass
class Mesh:
    """A triangle mesh in the camera frame (metres), with per-vertex colours in [0, 1]."""

    verts: np.ndarray  # (N, 3)
    faces: np.ndarray  # (F, 3) int
    colors: np.ndarray  # (N, 3) or (3,)
    label: int  # written to the label buffer where this mesh is visible (1..255)
    closed: bool = True  # closed, outward-wound mesh: cull back faces; False: two-sided shading
    normals: np.ndarray | None = None  # (N, 3); smooth vertex normals computed when None


@dataclass
class Table:
    """The table rectangle on the world plane y = 0 and its look."""

    x_range: tuple[float, float]
    z_range: tuple[float, float]
    color: np.ndarray  # (3,) base colour in [0, 1]
    pattern: str = "grain"  # "grain" | "tiles" | "plain"
    scale: float = 0.05  # pattern period, metres
    noise: np.ndarray = field(default_factory=lambda: np.zeros((8, 8), np.float32))  # low-res value noise


@dataclass
class Light:
    key_dir: np.ndarray  # (3,) world direction TO the key light (mostly +Y)
    ambient: float = 0.35
    key: float = 0.6
    fill: float = 0.2  # headlight from the camera


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted smooth vertex normals (N, 3), unit length."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = np.cross(v1 - v0, v2 - v0)
    n = np.zeros_like(verts)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=len(verts))
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def bilinear(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample a periodic 2-D grid at continuous coordinates (u along columns, v along rows)."""
    h, w = grid.shape
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = (u - u0).astype(np.float32), (v - v0).astype(np.float32)
    i0, j0 = v0.astype(np.int64) % h, u0.astype(np.int64) % w
    i1, j1 = (i0 + 1) % h, (j0 + 1) % w
    g = grid.astype(np.float32)
    top = g[i0, j0] + fu * (g[i0, j1] - g[i0, j0])
    bot = g[i1, j0] + fu * (g[i1, j1] - g[i1, j0])
    return top + fv * (bot - top)


# ------------------------------------------------------------------------------------------------
# triangle rasterisation


def _pow2_ceil_log(n: np.ndarray) -> np.ndarray:
    return np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64)


def rasterize(uvz: np.ndarray, faces: np.ndarray, H: int, W: int, zbuf: np.ndarray, cull: np.ndarray | None = None):
    """Rasterise triangles given projected vertices ``uvz`` (N, 3) = (u, v, camera z).

    ``zbuf`` (H*W,) holds the depth already there (table); it is not modified. ``cull`` (F,) bool
    marks faces to drop (back faces). Returns ``(pix, face, bary, depth)`` for the pixels where a
    triangle is the nearest surface: flat pixel index, face index, perspective-correct
    barycentrics (n, 3) and depth.
    """
    tri = uvz[faces]  # (F, 3, 3)
    u, v, z = tri[..., 0], tri[..., 1], tri[..., 2]
    ok = (z > NEAR).all(1)
    if cull is not None:
        ok &= ~cull
    x0 = np.clip(np.ceil(u.min(1)), 0, W - 1)
    x1 = np.clip(np.floor(u.max(1)), 0, W - 1)
    y0 = np.clip(np.ceil(v.min(1)), 0, H - 1)
    y1 = np.clip(np.floor(v.max(1)), 0, H - 1)
    ok &= (u.max(1) >= 0) & (u.min(1) <= W - 1) & (v.max(1) >= 0) & (v.min(1) <= H - 1)
    ok &= (x1 >= x0) & (y1 >= y0)
    area = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (v[:, 1] - v[:, 0]) * (u[:, 2] - u[:, 0])
    ok &= np.abs(area) > 1e-9
    idx_all = np.flatnonzero(ok)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
    if idx_all.size == 0:
        return empty
    # edge-function coefficients per triangle: w_k(px, py) = A_k px + B_k py + C_k (barycentric of vertex k)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(ok, 1.0 / np.where(ok, area, 1.0), 0.0)
    A = np.stack([(v[:, 1] - v[:, 2]), (v[:, 2] - v[:, 0]), (v[:, 0] - v[:, 1])], 1) * inv[:, None]
    B = np.stack([(u[:, 2] - u[:, 1]), (u[:, 0] - u[:, 2]), (u[:, 1] - u[:, 0])], 1) * inv[:, None]
    C = np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1], u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                  u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], 1) * inv[:, None]
    # evaluate relative to the box corner in float32 (small numbers, no cancellation)
    C0 = (C + A * x0[:, None] + B * y0[:, None]).astype(np.float32)
    A, B = A.astype(np.float32), B.astype(np.float32)
    iz = (1.0 / z).astype(np.float32)
    bw = (x1 - x0 + 1).astype(np.int64)
    bh = (y1 - y0 + 1).astype(np.int64)
    key = _pow2_ceil_log(bw[idx_all]) * 32 + _pow2_ceil_log(bh[idx_all])
    pix_l, face_l, w_l = [], [], []
    for k in np.unique(key):
        sel = idx_all[key == k]
        sw, sh = 1 << int(k // 32), 1 << int(k % 32)
        gy, gx = np.divmod(np.arange(sw * sh), sw)
        gxf, gyf = gx.astype(np.float32), gy.astype(np.float32)
        step = max(1, 1_000_000 // (sw * sh))  # bound the temporaries
        for c in range(0, sel.size, step):
            f = sel[c:c + step]
            w = (A[f, None, :] * gxf[None, :, None] + B[f, None, :] * gyf[None, :, None] + C0[f, None, :])  # (n, S, 3)
            inside = (w.min(2) >= -1e-6) & (gx[None] < bw[f, None]) & (gy[None] < bh[f, None])
            fi, gi = np.nonzero(inside)
            if fi.size == 0:
                continue
            ff = f[fi]
            pix_l.append((y0[ff].astype(np.int64) + gy[gi]) * W + x0[ff].astype(np.int64) + gx[gi])
            face_l.append(ff)
            w_l.append(w[fi, gi])
    if not pix_l:
        return empty
    pix, face, w = np.concatenate(pix_l), np.concatenate(face_l), np.concatenate(w_l)
    w = w * iz[face]  # perspective-correct weights
    s = w.sum(1)
    depth = 1.0 / s
    front = depth < zbuf[pix]
    pix, face, w, depth, s = pix[front], face[front], w[front], depth[front], s[front]
    zb = np.full(H * W, np.inf, np.float32)
    np.minimum.at(zb, pix, depth)
    win = depth <= zb[pix]
    pix, face, w, depth, s = pix[win], face[win], w[win], depth[win], s[win]
    # exact depth ties (shared edges): keep one candidate per pixel
    _, first = np.unique(pix, return_index=True)
    return pix[first], face[first], w[first] / s[first, None], depth[first]


# ------------------------------------------------------------------------------------------------
# frame


_RAYS: dict = {}


def pixel_rays(K: np.ndarray, H: int, W: int) -> np.ndarray:
    """Camera-frame rays (H*W, 3) with z = 1 through every pixel centre. ``K`` = fx, fy, cx, cy.
    Cached per camera (read-only result)."""
    key = (tuple(float(k) for k in K), int(H), int(W))
    r = _RAYS.get(key)
    if r is None:
        fx, fy, cx, cy = key[0]
        jj, ii = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        r = np.stack([((jj - cx) / fx).ravel(), ((ii - cy) / fy).ravel(), np.ones(H * W)], 1)
        r.setflags(write=False)
        if len(_RAYS) > 16:
            _RAYS.clear()
        _RAYS[key] = r
    return r


def _table_texture(table: Table, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    n = bilinear(table.noise, x / (table.scale * 4), z / (table.scale * 4))
    if table.pattern == "grain":
        s = 0.5 + 0.5 * np.sin((2 * np.pi) * (x / table.scale + 1.5 * n)).astype(np.float32)
        f = 0.88 + 0.16 * s * s * s + 0.06 * n
    elif table.pattern == "tiles":
        q = table.scale * 2
        ti = ((np.floor(x / q) + np.floor(z / q)) % 2).astype(np.float32)
        gx = np.abs((x / q) % 1 - 0.5)
        gz = np.abs((z / q) % 1 - 0.5)
        grout = (np.maximum(gx, gz) > 0.47).astype(np.float32)
        f = (0.92 + 0.1 * ti + 0.06 * n) * (1 - 0.35 * grout)
    else:
        f = 0.93 + 0.12 * n
    return np.clip(table.color.astype(np.float32)[None] * f[:, None], 0, 1)


def _shadow(points: np.ndarray, hx: np.ndarray, hz: np.ndarray, light_dir: np.ndarray) -> np.ndarray:
    """Soft shadow attenuation (n,) at table points (hx, hz) from occluder points (P, 3) in the
    world, blurred more the higher they are (the key light is mostly overhead)."""
    if points.size == 0 or hx.size == 0:
        return np.ones(hx.size, np.float32)
    q = points[(points[:, 1] < 0.3)]
    y = np.maximum(q[:, 1], 0.0)
    ld = light_dir / np.linalg.norm(light_dir)
    sx = (q[:, 0] - y * ld[0] / max(ld[1], 0.2)).astype(np.float32)
    sz = (q[:, 2] - y * ld[2] / max(ld[1], 0.2)).astype(np.float32)
    inv2s2 = (1.0 / (2 * (0.006 + 0.22 * y) ** 2)).astype(np.float32)
    amp = (1.0 / (1.0 + 25.0 * y)).astype(np.float32)
    d2 = (hx.astype(np.float32)[:, None] - sx[None]) ** 2 + (hz.astype(np.float32)[:, None] - sz[None]) ** 2
    occ = np.exp(-d2 * inv2s2[None]) @ amp
    return 1.0 - 0.55 * (1.0 - np.exp(-0.35 * occ))


def _table_layer(rays, R_c2w, c_w, table, H, W):
    """Per-pixel table hit (mask), depth, world x/z (flat arrays)."""
    d_w = rays @ R_c2w.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -c_w[1] / d_w[:, 1]
    hit = (d_w[:, 1] < -1e-9) & (t > 0) & np.isfinite(t)
    hx = c_w[0] + t * d_w[:, 0]
    hz = c_w[2] + t * d_w[:, 2]
    hit &= (hx >= table.x_range[0]) & (hx <= table.x_range[1]) & (hz >= table.z_range[0]) & (hz <= table.z_range[1])
    return hit, np.where(hit, t, np.inf), hx, hz


def render_frame(meshes: list[Mesh], K: np.ndarray, cam_to_world: np.ndarray, size: tuple[int, int], table: Table,
                 background: np.ndarray, light: Light, shadow_points: np.ndarray | None = None,
                 supersample: int = 1, noise_std: float = 0.0, rng: np.random.Generator | None = None,
                 cache: dict | None = None):
    """Render one frame. ``K`` = (fx, fy, cx, cy) of the output image of ``size`` = (W, H);
    ``background`` is a float (H, W, 3) image in [0, 1]; ``shadow_points`` (P, 3) world points that
    cast soft shadows on the table. ``cache`` (a dict kept by the caller) reuses the table layer
    while the camera does not move. Returns ``(rgb uint8 (H, W, 3), labels uint8 (H, W))``."""
    W0, H0 = size
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    fx, fy, cx, cy = (float(k) for k in K)
    Ks = np.array([fx * s, fy * s, (cx + 0.5) * s - 0.5, (cy + 0.5) * s - 0.5])
    W, H = W0 * s, H0 * s
    R_c2w, c_w = cam_to_world[:3, :3], cam_to_world[:3, 3]
    L_cam = R_c2w.T @ (light.key_dir / np.linalg.norm(light.key_dir))
    rays = pixel_rays(Ks, H, W)

    # 1. table / background (cached while the camera is still)
    key = (np.asarray(cam_to_world, np.float64).tobytes(), Ks.tobytes(), H, W, id(table), id(background))
    layer = cache.get("layer") if cache is not None else None
    if layer is None or layer[0] != key:
        hit, zbuf, hx, hz = _table_layer(rays, R_c2w, c_w, table, H, W)
        bg = background if s == 1 else np.repeat(np.repeat(background, s, 0), s, 1)
        base = bg.reshape(-1, 3).astype(np.float32)
        hi = np.flatnonzero(hit)
        if hi.size:
            up_c = R_c2w.T @ np.array([0.0, 1.0, 0.0])
            r = rays[hi]
            shade = light.ambient + light.key * max(float(light.key_dir[1] / np.linalg.norm(light.key_dir)), 0.0)
            shade = shade + light.fill * np.abs(r @ up_c) / np.linalg.norm(r, axis=1)
            base[hi] = _table_texture(table, hx[hi], hz[hi]) * shade.astype(np.float32)[:, None]
        # coarse grid for the soft shadows: every 4th output pixel
        step = 4 * s
        gi = np.minimum(np.arange(-(-H // step)) * step + step // 2, H - 1)
        gj = np.minimum(np.arange(-(-W // step)) * step + step // 2, W - 1)
        cidx = (gi[:, None] * W + gj[None]).ravel()
        layer = (key, hit, zbuf, base, hx[cidx], hz[cidx], hit[cidx], len(gi), len(gj), step)
        if cache is not None:
            cache["layer"] = layer
    _, hit, zbuf, base, chx, chz, chit, ni, nj, step = layer
    img = base.copy()
    if shadow_points is not None and len(shadow_points) and chit.any():
        att = np.ones(ni * nj, np.float32)
        att[chit] = _shadow(shadow_points, chx[chit], chz[chit], light.key_dir)
        att = att.reshape(ni, nj)
        # bilinear-ish upsampling: repeat, then a small box blur of the coarse grid first
        pad = np.pad(att, 1, mode="edge")
        att = (pad[:-2, 1:-1] + pad[2:, 1:-1] + pad[1:-1, :-2] + pad[1:-1, 2:] + 4 * att) / 8
        full = np.repeat(np.repeat(att, step, 0), step, 1)[:H, :W].ravel()
        img[hit] *= full[hit, None]
    labels = np.zeros(H * W, np.uint8)

    # 2. triangles
    if meshes:
        verts, faces, cols, labs, norms, cull_l, twosided = [], [], [], [], [], [], []
        off = 0
        for m in meshes:
            v = np.asarray(m.verts, np.float64)
            f = np.asarray(m.faces, np.int64)
            n = vertex_normals(v, f) if m.normals is None else np.asarray(m.normals, np.float64)
            c = np.broadcast_to(np.asarray(m.colors, np.float64), v.shape)
            verts.append(v), faces.append(f + off), cols.append(c), norms.append(n)
            labs.append(np.full(len(f), m.label, np.uint8))
            if m.closed:
                fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
                cull_l.append(np.einsum("ij,ij->i", fn, v[f[:, 0]]) > 0)
            else:
                cull_l.append(np.zeros(len(f), bool))
            twosided.append(np.full(len(f), not m.closed))
            off += len(v)
        V, F, C, N = np.concatenate(verts), np.concatenate(faces), np.concatenate(cols), np.concatenate(norms)
        z = np.maximum(V[:, 2], 1e-9)
        uvz = np.stack([Ks[0] * V[:, 0] / z + Ks[2], Ks[1] * V[:, 1] / z + Ks[3], V[:, 2]], 1)
        pix, face, bary, depth = rasterize(uvz, F, H, W, zbuf, np.concatenate(cull_l))
        if pix.size:
            tri = F[face]
            n = np.einsum("pk,pkc->pc", bary, N[tri])
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            view = rays[pix] / np.linalg.norm(rays[pix], axis=1, keepdims=True)
            facing = np.einsum("pc,pc->p", n, view)
            n = np.where((facing > 0)[:, None], -n, n)  # the side we see (two-sided / grazing)
            c = np.einsum("pk,pkc->pc", bary, C[tri])
            lam = np.maximum(n @ L_cam, 0.0)
            fill = np.maximum(-np.einsum("pc,pc->p", n, view), 0.0)
            shade = light.ambient + light.key * lam + light.fill * fill
            img[pix] = c * shade[:, None]
            labels[pix] = np.concatenate(labs)[face]
    img = img.reshape(H, W, 3)
    labels = labels.reshape(H, W)
    if s > 1:
        img = img.reshape(H0, s, W0, s, 3).mean((1, 3))
        labels = labels[s // 2::s, s // 2::s]
    if noise_std > 0:
        img = img + np.float32(noise_std) * (rng or np.random.default_rng(0)).standard_normal(img.shape, dtype=np.float32)
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return rgb, labels
