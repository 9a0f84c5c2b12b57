// Per-sample MANO math shared by the CPU (mano_cpu.cpp) and CUDA (mano_cuda_*.cu) kernels, so the
// CPU tests check the exact arithmetic the GPU runs. Spec: beingh0/mano/lbs.py (mano_lbs); the
// backward is reverse-mode of that function, derived by hand (formulas beside each function).
// All arrays are flat and row-major: R/GR (16*9), J/Jp (16*3), A (16*12: [G_R | t] per joint).
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define BH0_HD __host__ __device__ __forceinline__
#else
#define BH0_HD inline
#endif
// Full unrolling on the GPU turns the small fixed-size arrays into registers (no local memory).
#if defined(__CUDA_ARCH__)
#define BH0_UNROLL _Pragma("unroll")
#else
#define BH0_UNROLL
#endif

namespace bh0 {
namespace mano {

constexpr int kJoints = 16;
constexpr int kPoseFeats = 135;  // 15 joints x 9 entries of (R_k - I)
constexpr int kKeypoints = 21;
constexpr int kTips = 5;

// PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14) (constants.py): five 3-joint
// fingers hanging off the wrist. A function, not a table, so device code needs no __constant__.
BH0_HD constexpr int parent(int k) { return k == 0 ? -1 : ((k - 1) % 3 == 0 ? 0 : k - 1); }

// KEYPOINT_ORDER (constants.py) as a function: keypoint i reads row keypoint_source(i) of
// cat(posed joints (16), tips (5)). Fingers in keypoint order are thumb, index, middle, ring,
// pinky, whose first MANO joints are 13, 1, 4, 10, 7; the 4th keypoint of a finger is its tip.
BH0_HD constexpr int keypoint_source(int i) {
  return i == 0 ? 0
                : ((i - 1) % 4 == 3 ? 16 + (i - 1) / 4
                                    : ((i - 1) / 4 == 0   ? 13
                                       : (i - 1) / 4 == 1 ? 1
                                       : (i - 1) / 4 == 2 ? 4
                                       : (i - 1) / 4 == 3 ? 10
                                                          : 7) +
                                          (i - 1) % 4);
}

BH0_HD float msqrt(float x) { return sqrtf(x); }
BH0_HD double msqrt(double x) { return sqrt(x); }
BH0_HD float msin(float x) { return sinf(x); }
BH0_HD double msin(double x) { return sin(x); }
BH0_HD float mcos(float x) { return cosf(x); }
BH0_HD double mcos(double x) { return cos(x); }

// Rodrigues coefficients R = I + a K + b K^2, K = [r]x, t2 = |r|^2, with da = da/dt2, db = db/dt2.
// Same Taylor switch as the reference (t2 < 1e-6, i.e. t < 1e-3) so value and gradient are exact
// at t = 0. Above it we use the half angle h = t/2 (sin t = 2 sh ch, 1 - cos t = 2 sh^2), which
// avoids the cancellation of 1 - cos t in float32 (10% error in b at t = 1e-3 otherwise).
template <class T>
BH0_HD void rodrigues_coefs(T t2, T& a, T& b, T& da, T& db) {
  if (t2 < T(1e-6)) {
    a = T(1) - t2 / T(6) + t2 * t2 / T(120);
    b = T(0.5) - t2 / T(24) + t2 * t2 / T(720);
    da = T(-1) / T(6) + t2 / T(60);
    db = T(-1) / T(24) + t2 / T(360);
  } else {
    const T t = msqrt(t2);
    const T sh = msin(T(0.5) * t), ch = mcos(T(0.5) * t);
    const T s = T(2) * sh * ch, omc = T(2) * sh * sh;  // sin t, 1 - cos t
    a = s / t;
    b = omc / t2;
    // a' = (t cos t - sin t) / (2 t^3), b' = (t sin t - 2 (1 - cos t)) / (2 t^4)
    da = (t * (T(1) - omc) - s) / (T(2) * t2 * t);
    db = (t * s - T(2) * omc) / (T(2) * t2 * t2);
  }
}

// f = R - I (row-major 3x3) for axis-angle r: f = a K + b (r r^T - t2 I), computed directly so the
// small diagonal terms -b (y^2 + z^2) carry no cancellation against the 1.
template <class T>
BH0_HD void rodrigues_minus_eye(const T* r, T* f) {
  const T x = r[0], y = r[1], z = r[2];
  const T xx = x * x, yy = y * y, zz = z * z;
  T a, b, da, db;
  rodrigues_coefs(xx + yy + zz, a, b, da, db);
  f[0] = -b * (yy + zz);   f[1] = -a * z + b * x * y; f[2] = a * y + b * x * z;
  f[3] = a * z + b * x * y; f[4] = -b * (xx + zz);   f[5] = -a * x + b * y * z;
  f[6] = -a * y + b * x * z; f[7] = a * x + b * y * z; f[8] = -b * (xx + yy);
}

// Reverse mode of R(r) given G = dL/dR (3x3). With s = <G, K>, q = r^T G r, tr = trace G:
// dL/dt2 = s a' + (q - t2 tr) b' - b tr, and
// dL/dr = a vee(G) + b (G + G^T) r + 2 r dL/dt2, vee(G) = (G21 - G12, G02 - G20, G10 - G01).
template <class T>
BH0_HD void rodrigues_backward(const T* r, const T* G, T* dr) {
  const T x = r[0], y = r[1], z = r[2];
  const T t2 = x * x + y * y + z * z;
  T a, b, da, db;
  rodrigues_coefs(t2, a, b, da, db);
  const T vx = G[7] - G[5], vy = G[2] - G[6], vz = G[3] - G[1];
  const T s = x * vx + y * vy + z * vz;  // <G, K>
  const T gr0 = G[0] * x + G[1] * y + G[2] * z, gr1 = G[3] * x + G[4] * y + G[5] * z,
          gr2 = G[6] * x + G[7] * y + G[8] * z;  // G r
  const T gt0 = G[0] * x + G[3] * y + G[6] * z, gt1 = G[1] * x + G[4] * y + G[7] * z,
          gt2 = G[2] * x + G[5] * y + G[8] * z;  // G^T r
  const T q = x * gr0 + y * gr1 + z * gr2;
  const T tr = G[0] + G[4] + G[8];
  const T dt2 = s * da + (q - t2 * tr) * db - b * tr;
  dr[0] = a * vx + b * (gr0 + gt0) + T(2) * x * dt2;
  dr[1] = a * vy + b * (gr1 + gt1) + T(2) * y * dt2;
  dr[2] = a * vz + b * (gr2 + gt2) + T(2) * z * dt2;
}

// Rest joints J = j_template + sum_s beta_s j_shapedirs_t[s] (16*3).
template <class T>
BH0_HD void rest_joints(const T* beta, long long S, const T* j_template, const T* j_shapedirs_t, T* J) {
  for (int m = 0; m < 48; ++m) J[m] = j_template[m];
  for (long long s = 0; s < S; ++s) {
    const T bs = beta[s];
    const T* row = j_shapedirs_t + s * 48;
    for (int m = 0; m < 48; ++m) J[m] += bs * row[m];
  }
}

// Rotations (R - I for all 16 joints; the pose features are rows 1..15) from the 48 pose values.
template <class T>
BH0_HD void pose_rotations(const T* pose, T* RmI) {
  BH0_UNROLL
  for (int k = 0; k < kJoints; ++k) rodrigues_minus_eye(pose + 3 * k, RmI + 9 * k);
}

// One link of the kinematic chain (lbs.py: kinematic_chain) for joint k with parent p:
// GR_k = GR_p R_k, Jp_k = Jp_p + GR_p (J_k - J_p), A_k = [GR_k | Jp_k - GR_k J_k]. For the root
// (Gp == nullptr) GR_0 = R_0 and Jp_0 = J_0. Rk is R_k - I; Jk/Jpar are the rest joints of k/p.
template <class T>
BH0_HD void chain_link(const T* Gp, const T* Jpp, const T* Jpar, const T* Jk, const T* Rk, T* G, T* Jpk, T* Ak) {
  if (Gp == nullptr) {
    BH0_UNROLL
    for (int i = 0; i < 9; ++i) G[i] = Rk[i] + (i % 4 == 0 ? T(1) : T(0));
    BH0_UNROLL
    for (int i = 0; i < 3; ++i) Jpk[i] = Jk[i];
  } else {
    const T d0 = Jk[0] - Jpar[0], d1 = Jk[1] - Jpar[1], d2 = Jk[2] - Jpar[2];
    BH0_UNROLL
    for (int i = 0; i < 3; ++i) {
      BH0_UNROLL
      for (int j = 0; j < 3; ++j)  // Gp (I + RmI)
        G[3 * i + j] = Gp[3 * i + j] + Gp[3 * i] * Rk[j] + Gp[3 * i + 1] * Rk[3 + j] + Gp[3 * i + 2] * Rk[6 + j];
      Jpk[i] = Jpp[i] + Gp[3 * i] * d0 + Gp[3 * i + 1] * d1 + Gp[3 * i + 2] * d2;
    }
  }
  BH0_UNROLL
  for (int i = 0; i < 3; ++i) {
    Ak[4 * i] = G[3 * i]; Ak[4 * i + 1] = G[3 * i + 1]; Ak[4 * i + 2] = G[3 * i + 2];
    Ak[4 * i + 3] = Jpk[i] - (G[3 * i] * Jk[0] + G[3 * i + 1] * Jk[1] + G[3 * i + 2] * Jk[2]);
  }
}

// The whole chain from R - I (16*9) and rest joints J (16*3) -> GR (16*9), Jp (16*3), A (16*12).
template <class T>
BH0_HD void chain_forward(const T* RmI, const T* J, T* GR, T* Jp, T* A) {
  BH0_UNROLL
  for (int k = 0; k < kJoints; ++k) {
    const int p = parent(k);
    if (p < 0) chain_link<T>(nullptr, nullptr, nullptr, J, RmI, GR, Jp, A);
    else chain_link(GR + 9 * p, Jp + 3 * p, J + 3 * p, J + 3 * k, RmI + 9 * k, GR + 9 * k, Jp + 3 * k, A + 12 * k);
  }
}

// Reverse mode of chain_forward. In: dA (16*12), dJp (16*3, the direct gradient of the posed
// joints; overwritten), RmI, J, GR. Out: dR (16*9), dJ (16*3). Joints run in reverse index order,
// which is valid because every parent has a smaller index than its children.
//   t_k = Jp_k - GR_k J_k:  dJp_k += dt_k, dGR_k += dAR_k - dt_k J_k^T, dJ_k = -GR_k^T dt_k
//   Jp_k = Jp_p + GR_p d:   dJp_p += dJp_k, dGR_p += dJp_k d^T, dJ_k += GR_p^T dJp_k, dJ_p -= same
//   GR_k = GR_p R_k:        dGR_p += dGR_k R_k^T, dR_k = GR_p^T dGR_k
template <class T>
BH0_HD void chain_backward(const T* RmI, const T* J, const T* GR, const T* dA, T* dJp, T* dR, T* dJ) {
  T dGR[kJoints * 9];
  BH0_UNROLL
  for (int k = 0; k < kJoints; ++k) {
    const T* a = dA + 12 * k;
    const T* G = GR + 9 * k;
    BH0_UNROLL
    for (int i = 0; i < 3; ++i) {
      const T dt = a[4 * i + 3];
      dJp[3 * k + i] += dt;
      BH0_UNROLL
      for (int j = 0; j < 3; ++j) dGR[9 * k + 3 * i + j] = a[4 * i + j] - dt * J[3 * k + j];
    }
    BH0_UNROLL
    for (int j = 0; j < 3; ++j)
      dJ[3 * k + j] = -(G[j] * a[3] + G[3 + j] * a[7] + G[6 + j] * a[11]);
  }
  BH0_UNROLL
  for (int k = kJoints - 1; k >= 1; --k) {
    const int p = parent(k);
    const T* Gp = GR + 9 * p;
    const T* Rk = RmI + 9 * k;
    const T* g = dJp + 3 * k;
    const T d[3] = {J[3 * k] - J[3 * p], J[3 * k + 1] - J[3 * p + 1], J[3 * k + 2] - J[3 * p + 2]};
    BH0_UNROLL
    for (int i = 0; i < 3; ++i) {
      dJp[3 * p + i] += g[i];
      const T gpt = Gp[i] * g[0] + Gp[3 + i] * g[1] + Gp[6 + i] * g[2];  // (GR_p^T g)_i
      dJ[3 * k + i] += gpt;
      dJ[3 * p + i] -= gpt;
    }
    const T* dG = dGR + 9 * k;
    BH0_UNROLL
    for (int i = 0; i < 3; ++i) {
      BH0_UNROLL
      for (int j = 0; j < 3; ++j) {
        // R_k = I + RmI_k: (dG R^T)_ij = dG_ij + sum_m dG_im RmI_jm
        dGR[9 * p + 3 * i + j] += g[i] * d[j] + dG[3 * i + j] + dG[3 * i] * Rk[3 * j] +
                                  dG[3 * i + 1] * Rk[3 * j + 1] + dG[3 * i + 2] * Rk[3 * j + 2];
        dR[9 * k + 3 * i + j] = Gp[i] * dG[j] + Gp[3 + i] * dG[3 + j] + Gp[6 + i] * dG[6 + j];
      }
    }
  }
  BH0_UNROLL
  for (int i = 0; i < 9; ++i) dR[i] = dGR[i];
  BH0_UNROLL
  for (int i = 0; i < 3; ++i) dJ[i] += dJp[i];
}

// Skinning of one vertex: T = sum_k w_k A_k (3x4), out = T[:, :3] vp + T[:, 3] + off.
template <class T>
BH0_HD void skin_matrix(const T* w, const T* A, T* Tm) {
  BH0_UNROLL
  for (int c = 0; c < 12; ++c) Tm[c] = T(0);
  BH0_UNROLL
  for (int k = 0; k < kJoints; ++k) {
    const T wk = w[k];
    BH0_UNROLL
    for (int c = 0; c < 12; ++c) Tm[c] += wk * A[12 * k + c];
  }
}

template <class T>
BH0_HD void skin_apply(const T* Tm, const T* vp, const T* off, T* out) {
  BH0_UNROLL
  for (int i = 0; i < 3; ++i)
    out[i] = Tm[4 * i] * vp[0] + Tm[4 * i + 1] * vp[1] + Tm[4 * i + 2] * vp[2] + Tm[4 * i + 3] + off[i];
}

// Reverse mode of skin_apply for vertex gradient g: dvp = T[:, :3]^T g and the 3x4 outer product
// O = g [vp; 1]^T, from which dA_k = sum_v w_vk O_v.
template <class T>
BH0_HD void skin_backward(const T* Tm, const T* vp, const T* g, T* dvp, T* O) {
  BH0_UNROLL
  for (int j = 0; j < 3; ++j) dvp[j] = Tm[j] * g[0] + Tm[4 + j] * g[1] + Tm[8 + j] * g[2];
  BH0_UNROLL
  for (int i = 0; i < 3; ++i) {
    O[4 * i] = g[i] * vp[0]; O[4 * i + 1] = g[i] * vp[1]; O[4 * i + 2] = g[i] * vp[2]; O[4 * i + 3] = g[i];
  }
}

// Posed rest position of one vertex v (V3 = 3V): vp = base + sum_p f_p posedirs_t[p, 3v:3v+3],
// f = the 135 pose features (rows 1..15 of RmI). Used where only a few vertices are needed.
template <class T>
BH0_HD void vertex_posed(long long v, long long V3, const T* base, const T* feats, const T* posedirs_t, T* vp) {
  T x = base[0], y = base[1], z = base[2];
  const T* col = posedirs_t + 3 * v;
  for (int p = 0; p < kPoseFeats; ++p) {
    const T fp = feats[p];
    const T* row = col + p * V3;
    x += fp * row[0]; y += fp * row[1]; z += fp * row[2];
  }
  vp[0] = x; vp[1] = y; vp[2] = z;
}

// Shaped rest position of vertex v: v_template[v] + sum_s beta_s shapedirs_t[s, 3v:3v+3].
template <class T>
BH0_HD void vertex_shaped(long long v, long long V3, long long S, const T* beta, const T* v_template,
                          const T* shapedirs_t, T* vs) {
  T x = v_template[3 * v], y = v_template[3 * v + 1], z = v_template[3 * v + 2];
  for (long long s = 0; s < S; ++s) {
    const T bs = beta[s];
    const T* row = shapedirs_t + s * V3 + 3 * v;
    x += bs * row[0]; y += bs * row[1]; z += bs * row[2];
  }
  vs[0] = x; vs[1] = y; vs[2] = z;
}

}  // namespace mano
}  // namespace bh0
