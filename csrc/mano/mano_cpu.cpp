// C++ CPU (OpenMP) MANO forward and backward. Per-sample math: mano_math.h (shared with CUDA).
//
// Layout of the work: samples are processed in blocks of kBlock. Per block we (1) run the small
// per-sample math (Rodrigues, chain), (2) form v_posed for all samples of the block as a small
// GEMM (kBlock x 135) @ (135 x 3V) that streams each posedirs row once per block while the block's
// accumulators stay in L1/L2, and (3) skin vertex tiles of kVT with the weights transposed to
// (16, V), so the 16-term weighted sum of 3x4 matrices vectorises across vertices.
// Keypoint-only calls (verts == nullptr, e.g. mano_joints with V = 5) skip (2)-(3) and evaluate
// only the 5 tip vertices.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#ifdef BEINGH0_HAVE_OPENMP
#include <omp.h>
#endif

#include "mano/mano.h"
#include "mano/mano_math.h"

namespace bh0 {
namespace mano {

Status validate(const char* op, const ManoArgs& a, int max_dtype) {
  const std::string o(op);
  if (a.dtype < 0 || a.dtype > max_dtype)
    return Status::value_error(o + ": unsupported dtype code " + std::to_string(a.dtype) +
                               (max_dtype == kF64 ? " (CPU supports 0 float32, 1 float64)"
                                                  : " (CUDA supports 0 float32, 1 float64, 2 float16, 3 bfloat16)"));
  if (a.B < 0) return Status::value_error(o + ": batch size B must be >= 0, got " + std::to_string(a.B));
  if (a.V < 1) return Status::value_error(o + ": V (vertices given) must be >= 1, got " + std::to_string(a.V));
  if (a.S < 1) return Status::value_error(o + ": S (number of betas) must be >= 1, got " + std::to_string(a.S));
  if (a.trans_mode != 0 && a.trans_mode != 1)
    return Status::value_error(o + ": trans_mode must be 0 (wrist) or 1 (smplx), got " + std::to_string(a.trans_mode));
  if (a.betas_rows != 1 && a.betas_rows != a.B)
    return Status::value_error(o + ": betas_rows must be 1 (shared) or B=" + std::to_string(a.B) + ", got " +
                               std::to_string(a.betas_rows));
  const bool rows_per_sample = a.betas_rows != 1;
  const struct { const void* p; const char* name; bool per_sample; } req[] = {
      {a.betas, "betas", rows_per_sample}, {a.pose, "pose", true}, {a.trans, "trans", true},
      {a.v_template, "v_template", false}, {a.shapedirs_t, "shapedirs_t", false},
      {a.posedirs_t, "posedirs_t", false}, {a.j_template, "j_template", false},
      {a.j_shapedirs_t, "j_shapedirs_t", false}, {a.weights, "weights", false}, {a.tip_ids, "tip_ids", false}};
  const size_t align = a.dtype == kF64 ? 8 : (a.dtype == kF32 ? 4 : 2);
  for (const auto& r : req) {
    // An empty batch has empty per-sample tensors, whose data_ptr() may be 0.
    if (r.p == nullptr && a.B == 0 && r.per_sample) continue;
    if (r.p == nullptr) return Status::value_error(o + ": argument " + r.name + " is a null pointer");
    if (reinterpret_cast<uintptr_t>(r.p) % (r.p == a.tip_ids ? 4 : align) != 0)
      return Status::value_error(o + ": argument " + r.name + " is not aligned to its element size");
  }
  return {};
}

namespace {

constexpr int kBlock = 8;  // samples per block: 8 x 3V floats = 75 KB of accumulators (L2)
constexpr int kVT = 16;    // vertices per skinning tile: one AVX-512 / two AVX2 vectors of float

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// No more threads than sample blocks: a 1-sample call on 2 threads measured 5 ms (fork/join of
// an idle second thread on a loaded machine) against 0.06 ms on one.
int threads_for(int64_t nblocks) {
#ifdef BEINGH0_HAVE_OPENMP
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), nblocks)));
#else
  (void)nblocks;
  return 1;
#endif
}

template <class T>
Status check_tips(const char* op, const ManoArgs& a) {
  for (int t = 0; t < kTips; ++t)
    if (a.tip_ids[t] < 0 || a.tip_ids[t] >= a.V)
      return Status::value_error(std::string(op) + ": tip_ids[" + std::to_string(t) + "] = " +
                                 std::to_string(a.tip_ids[t]) + " is outside [0, V=" + std::to_string(a.V) + ")");
  return {};
}

// Everything one block of samples needs, per thread (allocated once per call and thread).
template <class T>
struct Scratch {
  std::vector<T> RmI, J, GR, Jp, A, off, acc, dvp, gv, O;
  Scratch(int64_t V3p, bool backward)
      : RmI(kBlock * 144), J(kBlock * 48), GR(kBlock * 144), Jp(kBlock * 48), A(kBlock * 192), off(kBlock * 3),
        acc(kBlock * V3p), dvp(backward ? kBlock * V3p : 0), gv(backward ? V3p : 0), O(backward ? 12 * V3p / 3 : 0) {}
};

// Shared read-only state of one call.
template <class T>
struct Model {
  const ManoArgs& a;
  const T *betas, *pose, *trans, *vt, *sd, *pd, *jt, *jsd, *w;
  int64_t V, V3, Vp, S;  // Vp = V rounded up to kVT
  std::vector<T> wT;     // (16, Vp) transposed weights, zero padded
  std::vector<T> vshared;  // (3 Vp) shaped template when betas are shared
  explicit Model(const ManoArgs& args)
      : a(args), betas(static_cast<const T*>(a.betas)), pose(static_cast<const T*>(a.pose)),
        trans(static_cast<const T*>(a.trans)), vt(static_cast<const T*>(a.v_template)),
        sd(static_cast<const T*>(a.shapedirs_t)), pd(static_cast<const T*>(a.posedirs_t)),
        jt(static_cast<const T*>(a.j_template)), jsd(static_cast<const T*>(a.j_shapedirs_t)),
        w(static_cast<const T*>(a.weights)), V(a.V), V3(3 * a.V), Vp(round_up(a.V, kVT)), S(a.S) {}
  void prepare_vertices() {
    wT.assign(16 * Vp, T(0));
    for (int64_t v = 0; v < V; ++v)
      for (int k = 0; k < 16; ++k) wT[k * Vp + v] = w[v * 16 + k];
    if (a.betas_rows == 1) {
      vshared.assign(3 * Vp, T(0));
      for (int64_t v = 0; v < V; ++v) vertex_shaped(v, V3, S, betas, vt, sd, &vshared[3 * v]);
    }
  }
  const T* beta(int64_t b) const { return betas + (a.betas_rows == 1 ? 0 : b * S); }
};

// Step 1 for one sample: rotations, rest joints, chain, translation offset.
template <class T>
void sample_math(const Model<T>& m, int64_t b, Scratch<T>& s, int i) {
  pose_rotations(m.pose + 48 * b, &s.RmI[144 * i]);
  rest_joints(m.beta(b), m.S, m.jt, m.jsd, &s.J[48 * i]);
  chain_forward(&s.RmI[144 * i], &s.J[48 * i], &s.GR[144 * i], &s.Jp[48 * i], &s.A[192 * i]);
  for (int c = 0; c < 3; ++c)
    s.off[3 * i + c] = m.trans[3 * b + c] - (m.a.trans_mode == 0 ? s.J[48 * i + c] : T(0));
}

// Step 2: acc[i] = v_shaped(b0 + i) + sum_p f_ip posedirs_t[p] for i < nb (rows of 3 Vp).
template <class T>
void posed_block(const Model<T>& m, int64_t b0, int nb, Scratch<T>& s) {
  const int64_t V3p = 3 * m.Vp, V3 = m.V3;
  for (int i = 0; i < nb; ++i) {
    T* acc = &s.acc[i * V3p];
    if (m.a.betas_rows == 1) {
      std::memcpy(acc, m.vshared.data(), sizeof(T) * V3p);
    } else {
      std::memcpy(acc, m.vt, sizeof(T) * V3);
      std::fill(acc + V3, acc + V3p, T(0));
      const T* beta = m.beta(b0 + i);
      for (int64_t q = 0; q < m.S; ++q) {
        const T bq = beta[q];
        const T* row = m.sd + q * V3;
        for (int64_t j = 0; j < V3; ++j) acc[j] += bq * row[j];
      }
    }
  }
  // Column tiles of 512 keep the block's accumulator slice (8 x 2 KB) in L1 across all 135 rows.
  constexpr int64_t kCols = 512;
  for (int64_t j0 = 0; j0 < V3; j0 += kCols) {
    const int64_t n = std::min(kCols, V3 - j0);
    for (int p = 0; p < kPoseFeats; ++p) {
      const T* row = m.pd + p * V3 + j0;
      for (int i = 0; i < nb; ++i) {
        const T f = s.RmI[144 * i + 9 + p];
        T* __restrict acc = &s.acc[i * V3p + j0];
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) acc[j] += f * row[j];
      }
    }
  }
}

// T (12 x kVT, SoA) = sum_k wT[k, v0:v0+kVT] A_k for one vertex tile.
template <class T>
inline void skin_tile(const Model<T>& m, int64_t v0, const T* A, T (&Tt)[12][kVT]) {
  for (int c = 0; c < 12; ++c)
    for (int v = 0; v < kVT; ++v) Tt[c][v] = T(0);
  for (int k = 0; k < 16; ++k) {
    const T* wk = &m.wT[k * m.Vp + v0];
    for (int c = 0; c < 12; ++c) {
      const T a = A[12 * k + c];
#pragma omp simd
      for (int v = 0; v < kVT; ++v) Tt[c][v] += wk[v] * a;
    }
  }
}

template <class T>
void write_joint_keypoints(const T* Jp, const T* off, T* kp) {
  for (int i = 0; i < kKeypoints; ++i) {
    const int src = keypoint_source(i);
    if (src < 16)
      for (int c = 0; c < 3; ++c) kp[3 * i + c] = Jp[3 * src + c] + off[c];
  }
}

// Tip vertex t of one sample, evaluated directly (keypoint-only path).
template <class T>
void tip_vertex(const Model<T>& m, int64_t b, const Scratch<T>& s, int i, int t, T* Tm, T* vp) {
  const int64_t v = m.a.tip_ids[t];
  T vs[3];
  vertex_shaped(v, m.V3, m.S, m.beta(b), m.vt, m.sd, vs);
  vertex_posed(v, m.V3, vs, &s.RmI[144 * i + 9], m.pd, vp);
  skin_matrix(m.w + 16 * v, &s.A[192 * i], Tm);
}

template <class T>
void forward_impl(const ManoArgs& a, const ManoForwardOut& out) {
  Model<T> m(a);
  const bool full = out.verts != nullptr;
  if (full) m.prepare_vertices();
  T* verts = static_cast<T*>(out.verts);
  T* kps = static_cast<T*>(out.keypoints);
  const int64_t nblocks = (a.B + kBlock - 1) / kBlock;
#pragma omp parallel num_threads(threads_for(nblocks))
  {
    Scratch<T> s(full ? 3 * m.Vp : 0, false);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t b0 = blk * kBlock;
      const int nb = static_cast<int>(std::min<int64_t>(kBlock, a.B - b0));
      for (int i = 0; i < nb; ++i) {
        sample_math(m, b0 + i, s, i);
        write_joint_keypoints(&s.Jp[48 * i], &s.off[3 * i], kps + 63 * (b0 + i));
      }
      if (!full) {
        for (int i = 0; i < nb; ++i)
          for (int t = 0; t < kTips; ++t) {
            T Tm[12], vp[3];
            tip_vertex(m, b0 + i, s, i, t, Tm, vp);
            skin_apply(Tm, vp, &s.off[3 * i], kps + 63 * (b0 + i) + 3 * (4 * t + 4));
          }
        continue;
      }
      posed_block(m, b0, nb, s);
      for (int i = 0; i < nb; ++i) {
        const T* vpb = &s.acc[i * 3 * m.Vp];
        const T* off = &s.off[3 * i];
        T* vb = verts + (b0 + i) * m.V3;
        for (int64_t v0 = 0; v0 < m.V; v0 += kVT) {
          T Tt[12][kVT];
          skin_tile(m, v0, &s.A[192 * i], Tt);
          const int n = static_cast<int>(std::min<int64_t>(kVT, m.V - v0));
          for (int v = 0; v < n; ++v) {
            const T* vp = vpb + 3 * (v0 + v);
            for (int r = 0; r < 3; ++r)
              vb[3 * (v0 + v) + r] = Tt[4 * r][v] * vp[0] + Tt[4 * r + 1][v] * vp[1] + Tt[4 * r + 2][v] * vp[2] +
                                     Tt[4 * r + 3][v] + off[r];
          }
        }
        for (int t = 0; t < kTips; ++t)  // tips are keypoints 4, 8, 12, 16, 20
          for (int c = 0; c < 3; ++c) kps[63 * (b0 + i) + 3 * (4 * t + 4) + c] = vb[3 * a.tip_ids[t] + c];
      }
    }
  }
}

// Chain/Rodrigues/joint part of the backward for one sample, given dA (16*12), the pose-feature
// gradient dfeat (135), dv_shaped . shapedirs (S, already in gbeta), and doff.
template <class T>
void sample_backward(const Model<T>& m, int64_t b, const Scratch<T>& s, int i, const T* dA, const T* dfeat,
                     const T* gkp, const T* doff, T* gbeta, T* gpose, T* gtrans) {
  T dJp[48] = {}, dR[144], dJ[48];
  if (gkp != nullptr)
    for (int k = 0; k < kKeypoints; ++k) {
      const int src = keypoint_source(k);
      if (src < 16)
        for (int c = 0; c < 3; ++c) dJp[3 * src + c] += gkp[3 * k + c];
    }
  chain_backward(&s.RmI[144 * i], &s.J[48 * i], &s.GR[144 * i], dA, dJp, dR, dJ);
  for (int p = 0; p < kPoseFeats; ++p) dR[9 + p] += dfeat[p];
  for (int k = 0; k < 16; ++k) rodrigues_backward(m.pose + 48 * b + 3 * k, dR + 9 * k, gpose + 3 * k);
  if (m.a.trans_mode == 0)
    for (int c = 0; c < 3; ++c) dJ[c] -= doff[c];
  for (int64_t q = 0; q < m.S; ++q) {
    T acc = gbeta[q];
    for (int j = 0; j < 48; ++j) acc += m.jsd[q * 48 + j] * dJ[j];
    gbeta[q] = acc;
  }
  for (int c = 0; c < 3; ++c) gtrans[c] = doff[c];
}

template <class T>
void backward_impl(const ManoArgs& a, const ManoBackwardIO& io) {
  Model<T> m(a);
  const bool full = io.grad_verts != nullptr;
  if (full) m.prepare_vertices();
  const T* gverts = static_cast<const T*>(io.grad_verts);
  const T* gkps = static_cast<const T*>(io.grad_keypoints);
  T* gpose = static_cast<T*>(io.grad_pose);
  T* gtrans = static_cast<T*>(io.grad_trans);
  const bool shared = a.betas_rows == 1;
  // Shared betas: per-sample partials, summed afterwards in sample order (deterministic).
  std::vector<T> partial(shared ? a.B * a.S : 0);
  T* gbeta_rows = shared ? partial.data() : static_cast<T*>(io.grad_betas);
  const int64_t nblocks = (a.B + kBlock - 1) / kBlock;
  const int64_t V3p = 3 * m.Vp, S = a.S;
#pragma omp parallel num_threads(threads_for(nblocks))
  {
    Scratch<T> s(full ? V3p : 0, full);
    std::vector<T> dA(kBlock * 192), dfeat(kBlock * kPoseFeats), doff(kBlock * 3);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t b0 = blk * kBlock;
      const int nb = static_cast<int>(std::min<int64_t>(kBlock, a.B - b0));
      for (int i = 0; i < nb; ++i) sample_math(m, b0 + i, s, i);
      std::fill(dA.begin(), dA.end(), T(0));
      std::fill(dfeat.begin(), dfeat.end(), T(0));
      for (int i = 0; i < nb; ++i) {
        T* gb = gbeta_rows + (b0 + i) * S;
        for (int64_t q = 0; q < S; ++q) gb[q] = T(0);
        const T* gk = gkps ? gkps + 63 * (b0 + i) : nullptr;
        for (int c = 0; c < 3; ++c) {
          T acc = T(0);
          if (gk)
            for (int k = 0; k < kKeypoints; ++k) acc += gk[3 * k + c];
          doff[3 * i + c] = acc;
        }
      }
      if (!full) {
        // Only the 5 tip vertices carry gradient; each (tip, keypoint grad) pair is independent,
        // which also handles repeated tip ids.
        if (gkps)
          for (int i = 0; i < nb; ++i) {
            const T* gk = gkps + 63 * (b0 + i);
            T* gb = gbeta_rows + (b0 + i) * S;
            for (int t = 0; t < kTips; ++t) {
              T Tm[12], vp[3], dvp[3], O[12];
              tip_vertex(m, b0 + i, s, i, t, Tm, vp);
              skin_backward(Tm, vp, gk + 3 * (4 * t + 4), dvp, O);
              const int64_t v = a.tip_ids[t];
              for (int k = 0; k < 16; ++k)
                for (int c = 0; c < 12; ++c) dA[192 * i + 12 * k + c] += m.w[16 * v + k] * O[c];
              for (int p = 0; p < kPoseFeats; ++p) {
                const T* r = m.pd + p * m.V3 + 3 * v;
                dfeat[kPoseFeats * i + p] += r[0] * dvp[0] + r[1] * dvp[1] + r[2] * dvp[2];
              }
              for (int64_t q = 0; q < S; ++q) {
                const T* r = m.sd + q * m.V3 + 3 * v;
                gb[q] += r[0] * dvp[0] + r[1] * dvp[1] + r[2] * dvp[2];
              }
            }
          }
      } else {
        posed_block(m, b0, nb, s);
        for (int i = 0; i < nb; ++i) {
          // gv = grad_verts + tip keypoint grads (the tips are vertices of the output)
          T* gv = s.gv.data();
          std::memcpy(gv, gverts + (b0 + i) * m.V3, sizeof(T) * m.V3);
          std::fill(gv + m.V3, gv + V3p, T(0));
          const T* gk = gkps ? gkps + 63 * (b0 + i) : nullptr;
          if (gk)
            for (int t = 0; t < kTips; ++t)
              for (int c = 0; c < 3; ++c) gv[3 * a.tip_ids[t] + c] += gk[3 * (4 * t + 4) + c];
          T so[3] = {0, 0, 0};
          for (int64_t j = 0; j < m.V3; j += 3) { so[0] += gv[j]; so[1] += gv[j + 1]; so[2] += gv[j + 2]; }
          // The tip keypoint grads were counted in doff already; gv now holds them too.
          if (gk)
            for (int t = 0; t < kTips; ++t)
              for (int c = 0; c < 3; ++c) so[c] -= gk[3 * (4 * t + 4) + c];
          for (int c = 0; c < 3; ++c) doff[3 * i + c] += so[c];
          const T* vpb = &s.acc[i * V3p];
          T* dvp = &s.dvp[i * V3p];
          T* O = s.O.data();  // (12, Vp) SoA
          for (int64_t v0 = 0; v0 < m.Vp; v0 += kVT) {
            T Tt[12][kVT];
            skin_tile(m, v0, &s.A[192 * i], Tt);
            for (int v = 0; v < kVT; ++v) {
              const int64_t vv = v0 + v;
              const T g0 = gv[3 * vv], g1 = gv[3 * vv + 1], g2 = gv[3 * vv + 2];
              const T* vp = vpb + 3 * vv;
              for (int j = 0; j < 3; ++j) dvp[3 * vv + j] = Tt[j][v] * g0 + Tt[4 + j][v] * g1 + Tt[8 + j][v] * g2;
              const T g[3] = {g0, g1, g2};
              for (int r = 0; r < 3; ++r) {
                O[(4 * r) * m.Vp + vv] = g[r] * vp[0];
                O[(4 * r + 1) * m.Vp + vv] = g[r] * vp[1];
                O[(4 * r + 2) * m.Vp + vv] = g[r] * vp[2];
                O[(4 * r + 3) * m.Vp + vv] = g[r];
              }
            }
          }
          // dA_k = sum_v w_vk O_v: 192 dot products over the padded vertex axis (pads are 0).
          for (int k = 0; k < 16; ++k) {
            const T* wk = &m.wT[k * m.Vp];
            for (int c = 0; c < 12; ++c) {
              const T* oc = O + c * m.Vp;
              T acc = T(0);
#pragma omp simd reduction(+ : acc)
              for (int64_t v = 0; v < m.Vp; ++v) acc += wk[v] * oc[v];
              dA[192 * i + 12 * k + c] = acc;
            }
          }
        }
        // dfeat_ip = <posedirs_t[p], dvp_i>, dbeta_iq += <shapedirs_t[q], dvp_i>: each constant
        // row is read once per block and dotted with the block's kBlock gradients.
        for (int p = 0; p < kPoseFeats + S; ++p) {
          const T* row = p < kPoseFeats ? m.pd + p * m.V3 : m.sd + (p - kPoseFeats) * m.V3;
          for (int i = 0; i < nb; ++i) {
            const T* dvp = &s.dvp[i * V3p];
            T acc = T(0);
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < m.V3; ++j) acc += row[j] * dvp[j];
            if (p < kPoseFeats) dfeat[kPoseFeats * i + p] = acc;
            else gbeta_rows[(b0 + i) * S + (p - kPoseFeats)] += acc;
          }
        }
      }
      for (int i = 0; i < nb; ++i) {
        const int64_t b = b0 + i;
        sample_backward(m, b, s, i, &dA[192 * i], &dfeat[kPoseFeats * i], gkps ? gkps + 63 * b : nullptr,
                        &doff[3 * i], gbeta_rows + b * S, gpose + 48 * b, gtrans + 3 * b);
      }
    }
  }
  if (shared) {
    T* gb = static_cast<T*>(io.grad_betas);
    for (int64_t q = 0; q < S; ++q) {
      double acc = 0.0;
      for (int64_t b = 0; b < a.B; ++b) acc += static_cast<double>(partial[b * S + q]);
      gb[q] = static_cast<T>(acc);
    }
  }
}

}  // namespace

Status forward_cpu(const ManoArgs& a, const ManoForwardOut& out) {
  const char* op = "mano_forward_cpu";
  Status st = validate(op, a, kF64);
  if (!st.ok()) return st;
  if (out.keypoints == nullptr && a.B > 0) return Status::value_error("mano_forward_cpu: argument keypoints_out is a null pointer");
  st = check_tips<float>(op, a);
  if (!st.ok() || a.B == 0) return st;
  if (a.dtype == kF32) forward_impl<float>(a, out);
  else forward_impl<double>(a, out);
  return {};
}

Status backward_cpu(const ManoArgs& a, const ManoBackwardIO& io) {
  const char* op = "mano_backward_cpu";
  Status st = validate(op, a, kF64);
  if (!st.ok()) return st;
  st = validate_backward_outputs(op, a, io);
  if (!st.ok()) return st;
  st = check_tips<float>(op, a);
  if (!st.ok()) return st;
  if (a.B == 0) {  // the batch sum of an empty batch is 0
    if (a.betas_rows == 1) {
      if (a.dtype == kF32) std::fill_n(static_cast<float*>(io.grad_betas), a.S, 0.0f);
      else std::fill_n(static_cast<double*>(io.grad_betas), a.S, 0.0);
    }
    return st;
  }
  if (a.dtype == kF32) backward_impl<float>(a, io);
  else backward_impl<double>(a, io);
  return {};
}

}  // namespace mano
}  // namespace bh0
