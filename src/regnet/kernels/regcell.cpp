// The light-gate ConvRNN / ConvGRU / ConvLSTM cell of the self-regulated ResNets, fused.
//
// Every gate of the light conv is channel-local: gate j of channel k reads only X_k and H_k
// (a 2-input 1x1 "pair" conv, then a depthwise 3x3). So one image of one cell update is a
// stencil over H x W x N values that fits in cache, and the whole update (both conv steps,
// every activation and the state arithmetic) runs in one pass that reads X, H, C and writes
// H', C'. The eager form moves every gate map through memory several times (issue 19).
// Backward reads X, H, C and the output gradients and writes dX, dH, dC and the parameter
// gradients. The gate activations it needs are either kept by forward (`saved`: 5 planes for
// the LSTM, written once, read once) or recomputed in cache; on the machines measured the
// sigmoids and tanhs cost more than moving those planes (docs/PERFORMANCE.md).
//
// Layout: NHWC (channels_last) activations, channel k innermost so the loops over k vectorise.
// Parameters, in the accumulation type A (float, double for double inputs), packed per
// conv of G gates as [pa (G,N) | pb (G,N) | pc (G,N) | w (G,9,N) | d (G,N)]:
//   P_j = pa_j X + pb_j H + pc_j           (the grouped 1x1 over interleaved [X, H])
//   Z_j = d_j + sum_t w_jt P_j(. + t)      (the depthwise 3x3, zero padding, t = ky*3 + kx)
// No torch headers: built by regnet.kernels with the system C++ compiler in a second or two,
// loaded with ctypes; regnet.models.cells falls back to the eager form where it is missing.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// SIMD through GCC/Clang vector extensions (no intrinsics: the same source builds for AVX2,
// AVX-512 or NEON). One vector holds L channels; the kernel needs N % L == 0 (the Python side
// falls back to the eager form otherwise).
typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
typedef uint32_t vu __attribute__((vector_size(32)));
typedef uint16_t vh __attribute__((vector_size(16)));
typedef double vd __attribute__((vector_size(32)));

template <class A> struct VT;
template <> struct VT<float> { typedef vf V; static constexpr int L = 8; };
template <> struct VT<double> { typedef vd V; static constexpr int L = 4; };

struct bf16 { uint16_t v; };

template <class V> inline V splat(typename std::remove_reference<decltype(V{}[0])>::type a) {
  return V{} + a;
}
template <class V, class A> inline V vload(const A* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class A> inline void vstore(A* p, V v) { std::memcpy(p, &v, sizeof v); }

// Storage type T -> accumulation vector (float for float and bf16, double for double).
inline vf tload(const float* p) { return vload<vf>(p); }
inline vd tload(const double* p) { return vload<vd>(p); }
inline vf tload(const bf16* p) {
  vh raw;
  std::memcpy(&raw, p, sizeof raw);
  vu bits = __builtin_convertvector(raw, vu) << 16;
  vf f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline void tstore(float* p, vf v) { vstore(p, v); }
inline void tstore(double* p, vd v) { vstore(p, v); }
inline void tstore(bf16* p, vf v) {  // round to nearest even, NaN stays NaN
  vu b;
  std::memcpy(&b, &v, sizeof b);
  vu rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  vu quiet = (b >> 16) | 0x40u;
  vu out = (v != v) ? quiet : rounded;
  vh h = __builtin_convertvector(out, vh);
  std::memcpy(p, &h, sizeof h);
}

// exp without a library call: Cody-Waite range reduction and the degree-6 polynomial of
// Cephes' expf (relative error ~2e-7 on [-87, 88]); NaN passes through.
inline vf vexp(vf x) {
  const vf lo = splat<vf>(-87.0f), hi = splat<vf>(88.0f);
  vf xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  vf t = xc * 1.44269504088896341f;
  vf n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  vf r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = splat<vf>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  vf y = p * r * r + r + 1.0f;
  vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  vf res = y * scale;
  return x != x ? x : res;
}
inline vf sigm(vf x) { return 1.0f / (1.0f + vexp(-x)); }
inline vf tanh_(vf x) { return 2.0f / (1.0f + vexp(-2.0f * x)) - 1.0f; }
// double: the library functions lane by lane (the tests' precision, not a training path)
inline vd sigm(vd x) {
  for (int i = 0; i < 4; ++i) x[i] = 1.0 / (1.0 + std::exp(-x[i]));
  return x;
}
inline vd tanh_(vd x) {
  for (int i = 0; i < 4; ++i) x[i] = std::tanh(x[i]);
  return x;
}

// One image's geometry; scratch planes are zero-padded to (H+2) x (W+2) x N.
struct Geo {
  int64_t H, W, N;
  int64_t tap[9];
  Geo(int64_t H, int64_t W, int64_t N) : H(H), W(W), N(N) {
    for (int t = 0; t < 9; ++t) tap[t] = ((t / 3 - 1) * (W + 2) + (t % 3 - 1)) * N;
  }
  int64_t pix(int64_t y, int64_t x) const { return (y * W + x) * N; }
  int64_t pad(int64_t y, int64_t x) const { return ((y + 1) * (W + 2) + (x + 1)) * N; }
  int64_t plane() const { return H * W * N; }
  int64_t padded() const { return (H + 2) * (W + 2) * N; }
};

template <class A> struct Conv {  // views into one packed parameter (or gradient) block
  A *pa, *pb, *pc, *w, *d;
  Conv(A* base, int G, int64_t N)
      : pa(base), pb(base + G * N), pc(base + 2 * G * N), w(base + 3 * G * N),
        d(base + 12 * G * N) {}
};

// f(p, q, k) for every pixel (p: its offset in an image, q: in a padded plane) and every
// vector of channels k .. k+L-1
template <class A, class F> inline void each(const Geo& g, F f) {
  for (int64_t y = 0; y < g.H; ++y)
    for (int64_t x = 0; x < g.W; ++x) {
      const int64_t p = g.pix(y, x), q = g.pad(y, x);
      for (int64_t k = 0; k < g.N; k += VT<A>::L) f(p, q, k);
    }
}

// P_j = pa_j X + pb_j (s * H) + pc_j at every pixel (s: the GRU's r, or none).
template <class T, class A>
void pair_conv(const Geo& g, int G, const Conv<const A>& cv, const T* x, const T* h,
               const A* s, A* P) {
  typedef typename VT<A>::V V;
  const int64_t N = g.N;
  each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
    V xv = tload(x + p + k), hv = tload(h + p + k);
    if (s) hv *= vload<V>(s + p + k);
    for (int j = 0; j < G; ++j) {
      const int64_t o = j * N + k;
      vstore(P + j * g.padded() + q + k,
             vload<V>(cv.pa + o) * xv + vload<V>(cv.pb + o) * hv + vload<V>(cv.pc + o));
    }
  });
}

// sum_t w_jt S_j(q + sign t) over the padded plane S_j, channels k..k+L: sign +1 is the
// depthwise 3x3 (S = P), sign -1 its transpose (S = dZ, giving dP)
template <int sign, class A>
inline typename VT<A>::V taps(const Geo& g, const Conv<const A>& cv, int j, const A* S,
                              int64_t q, int64_t k) {
  typedef typename VT<A>::V V;
  const A* c = S + j * g.padded() + q + k;
  const A* w = cv.w + j * 9 * g.N + k;
  V z = vload<V>(w) * vload<V>(c + sign * g.tap[0]);
  for (int t = 1; t < 9; ++t) z += vload<V>(w + t * g.N) * vload<V>(c + sign * g.tap[t]);
  return z;
}
template <class A>  // Z_j = d_j + the 3x3 of P_j
inline typename VT<A>::V stencil(const Geo& g, const Conv<const A>& cv, int j, const A* P,
                                 int64_t q, int64_t k) {
  return vload<typename VT<A>::V>(cv.d + j * g.N + k) + taps<1>(g, cv, j, P, q, k);
}
template <class A>  // dP_j from the padded dZ_j
inline typename VT<A>::V stencil_t(const Geo& g, const Conv<const A>& cv, int j, const A* dZ,
                                   int64_t q, int64_t k) {
  return taps<-1>(g, cv, j, dZ, q, k);
}

// dW_jt += dz P_j(p + t); dd_j += dz; and dz kept in the padded dZ plane
template <class A>
inline void accum_dw(const Geo& g, Conv<A>& gr, int j, const A* P, A* dZ, int64_t q,
                     int64_t k, typename VT<A>::V dz) {
  typedef typename VT<A>::V V;
  const A* c = P + j * g.padded() + q + k;
  A* w = gr.w + j * 9 * g.N + k;
  for (int t = 0; t < 9; ++t)
    vstore(w + t * g.N, vload<V>(w + t * g.N) + dz * vload<V>(c + g.tap[t]));
  A* d = gr.d + j * g.N + k;
  vstore(d, vload<V>(d) + dz);
  if (dZ) vstore(dZ + j * g.padded() + q + k, dz);
}

// dpa_j += dp X; dpb_j += dp H'; dpc_j += dp (H' = H, or r*H for the GRU's candidate)
template <class A>
inline void accum_pair(const Geo& g, Conv<A>& gr, int j, int64_t k, typename VT<A>::V dp,
                       typename VT<A>::V xv, typename VT<A>::V hv) {
  typedef typename VT<A>::V V;
  const int64_t o = j * g.N + k;
  vstore(gr.pa + o, vload<V>(gr.pa + o) + dp * xv);
  vstore(gr.pb + o, vload<V>(gr.pb + o) + dp * hv);
  vstore(gr.pc + o, vload<V>(gr.pc + o) + dp);
}

// The GRU's z and r planes from P (the z, r pair convs), then the candidate's P2 from [X, r*H].
template <class T, class A>
void gru_gates(const Geo& g, const Conv<const A>& c1, const Conv<const A>& c2, const T* x,
               const T* h, const A* P, A* zp, A* rp, A* P2) {
  each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
    vstore(zp + p + k, sigm(stencil(g, c1, 0, P, q, k)));
    vstore(rp + p + k, sigm(stencil(g, c1, 1, P, q, k)));
  });
  pair_conv<T, A>(g, 1, c2, x, h, rp, P2);
}

// Back through G pair convs from their padded dZ planes: dX = dxa + sum_j pa_j dP_j, dH the
// same with pb (dxa, dha: terms from elsewhere, or none), and the pair convs' gradients.
template <class T, class A>
void pair_backward(const Geo& g, int G, const Conv<const A>& cv, Conv<A>& gr, const A* dZ,
                   const T* x, const T* h, const A* dxa, const A* dha, T* dx, T* dh) {
  typedef typename VT<A>::V V;
  const int64_t N = g.N;
  each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
    V xv = tload(x + p + k), hv = tload(h + p + k);
    V dxv = dxa ? vload<V>(dxa + p + k) : V{}, dhv = dha ? vload<V>(dha + p + k) : V{};
    for (int j = 0; j < G; ++j) {
      V dp = stencil_t(g, cv, j, dZ, q, k);
      dxv += vload<V>(cv.pa + j * N + k) * dp;
      dhv += vload<V>(cv.pb + j * N + k) * dp;
      accum_pair(g, gr, j, k, dp, xv, hv);
    }
    tstore(dx + p + k, dxv);
    tstore(dh + p + k, dhv);
  });
}

enum Cell { RNN = 0, GRU = 1, LSTM = 2 };

struct Args {
  int cell;
  int64_t B, H, W, N;
  const void *x, *h, *c, *p1, *p2;
  void *hn, *cn;
  const void *dhn, *dcn;
  void *dx, *dh, *dc, *dp1, *dp2;
  void* saved;  // A-typed planes per image (saved_planes(cell) of H x W x N), or null
};

// What a training forward keeps for backward, so that backward does not recompute the 3x3s
// and the sigmoids / tanhs (measured: they are most of its time): LSTM i, f, o, g, tanh(C');
// GRU z, r, candidate; RNN H'.
inline int saved_planes(int cell) { return cell == LSTM ? 5 : (cell == GRU ? 3 : 1); }

inline int gates1(int cell) { return cell == LSTM ? 4 : (cell == GRU ? 2 : 1); }

template <class A> struct Scratch {  // per thread
  std::vector<A> P, P2, dZ, dZ2, zp, rp, dxa, dha;
  std::vector<A> g1, g2;         // one image's parameter gradients
  std::vector<double> t1, t2;    // the thread's totals
};

template <class T, class A>
void forward_image(const Args& a, const Geo& g, int64_t b, Scratch<A>& s) {
  typedef typename VT<A>::V V;
  const int64_t N = g.N, off = b * g.plane();
  const T* x = static_cast<const T*>(a.x) + off;
  const T* h = static_cast<const T*>(a.h) + off;
  T* hn = static_cast<T*>(a.hn) + off;
  const int G = gates1(a.cell);
  Conv<const A> c1(static_cast<const A*>(a.p1), G, N);
  A* P = s.P.data();
  A* sv = a.saved ? static_cast<A*>(a.saved) + b * saved_planes(a.cell) * g.plane() : nullptr;
  const int64_t pl = g.plane();
  pair_conv<T, A>(g, G, c1, x, h, nullptr, P);
  if (a.cell == RNN) {
    each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
      V o = tanh_(stencil(g, c1, 0, P, q, k));
      tstore(hn + p + k, o);
      if (sv) vstore(sv + p + k, o);
    });
  } else if (a.cell == LSTM) {
    const T* c = static_cast<const T*>(a.c) + off;
    T* cn = static_cast<T*>(a.cn) + off;
    each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
      V i = sigm(stencil(g, c1, 0, P, q, k)), f = sigm(stencil(g, c1, 1, P, q, k));
      V o = sigm(stencil(g, c1, 2, P, q, k)), gg = tanh_(stencil(g, c1, 3, P, q, k));
      V cc = f * tload(c + p + k) + i * gg, tc = tanh_(cc);
      tstore(cn + p + k, cc);
      tstore(hn + p + k, o * tc);
      if (sv) {
        vstore(sv + p + k, i);
        vstore(sv + pl + p + k, f);
        vstore(sv + 2 * pl + p + k, o);
        vstore(sv + 3 * pl + p + k, gg);
        vstore(sv + 4 * pl + p + k, tc);
      }
    });
  } else {  // GRU: z, r from [X, H]; the candidate from [X, r*H]
    Conv<const A> c2(static_cast<const A*>(a.p2), 1, N);
    A *zp = sv ? sv : s.zp.data(), *rp = sv ? sv + pl : s.rp.data(), *P2 = s.P2.data();
    gru_gates<T, A>(g, c1, c2, x, h, P, zp, rp, P2);
    each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
      V hv = tload(h + p + k), cand = tanh_(stencil(g, c2, 0, P2, q, k));
      tstore(hn + p + k, hv + vload<V>(zp + p + k) * (cand - hv));
      if (sv) vstore(sv + 2 * pl + p + k, cand);
    });
  }
}

template <class T, class A>
void backward_image(const Args& a, const Geo& g, int64_t b, Scratch<A>& s) {
  typedef typename VT<A>::V V;
  const V one = splat<V>(A(1));
  const int64_t N = g.N, off = b * g.plane();
  const T* x = static_cast<const T*>(a.x) + off;
  const T* h = static_cast<const T*>(a.h) + off;
  const T* dhn = static_cast<const T*>(a.dhn) + off;
  T* dx = static_cast<T*>(a.dx) + off;
  T* dh = static_cast<T*>(a.dh) + off;
  const int G = gates1(a.cell);
  Conv<const A> c1(static_cast<const A*>(a.p1), G, N);
  std::fill(s.g1.begin(), s.g1.end(), A(0));
  Conv<A> g1(s.g1.data(), G, N);
  A *P = s.P.data(), *dZ = s.dZ.data();
  const A* sv = a.saved ? static_cast<const A*>(a.saved) + b * saved_planes(a.cell) * g.plane()
                        : nullptr;
  const int64_t pl = g.plane();
  pair_conv<T, A>(g, G, c1, x, h, nullptr, P);  // the 3x3s' inputs, for their weight grads

  if (a.cell == RNN || a.cell == LSTM) {
    const T* c = a.cell == LSTM ? static_cast<const T*>(a.c) + off : nullptr;
    const T* dcn = a.cell == LSTM ? static_cast<const T*>(a.dcn) + off : nullptr;
    T* dc = a.cell == LSTM ? static_cast<T*>(a.dc) + off : nullptr;
    each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
      V dhv = tload(dhn + p + k);
      if (a.cell == RNN) {
        V o = sv ? vload<V>(sv + p + k) : tanh_(stencil(g, c1, 0, P, q, k));
        accum_dw(g, g1, 0, P, dZ, q, k, dhv * (one - o * o));
        return;
      }
      V i, f, o, gg, tc, cv = tload(c + p + k);
      if (sv) {
        i = vload<V>(sv + p + k);
        f = vload<V>(sv + pl + p + k);
        o = vload<V>(sv + 2 * pl + p + k);
        gg = vload<V>(sv + 3 * pl + p + k);
        tc = vload<V>(sv + 4 * pl + p + k);
      } else {
        i = sigm(stencil(g, c1, 0, P, q, k));
        f = sigm(stencil(g, c1, 1, P, q, k));
        o = sigm(stencil(g, c1, 2, P, q, k));
        gg = tanh_(stencil(g, c1, 3, P, q, k));
        tc = tanh_(f * cv + i * gg);
      }
      V dct = tload(dcn + p + k) + dhv * o * (one - tc * tc);
      tstore(dc + p + k, dct * f);
      accum_dw(g, g1, 0, P, dZ, q, k, dct * gg * i * (one - i));
      accum_dw(g, g1, 1, P, dZ, q, k, dct * cv * f * (one - f));
      accum_dw(g, g1, 2, P, dZ, q, k, dhv * tc * o * (one - o));
      accum_dw(g, g1, 3, P, dZ, q, k, dct * i * (one - gg * gg));
    });
    pair_backward<T, A>(g, G, c1, g1, dZ, x, h, nullptr, nullptr, dx, dh);
    return;
  }

  // GRU: z, r (saved, or recomputed) and the candidate's input, then three passes back.
  Conv<const A> c2(static_cast<const A*>(a.p2), 1, N);
  std::fill(s.g2.begin(), s.g2.end(), A(0));
  Conv<A> g2(s.g2.data(), 1, N);
  const A *zp = sv ? sv : s.zp.data(), *rp = sv ? sv + pl : s.rp.data();
  A *dxa = s.dxa.data(), *dha = s.dha.data(), *P2 = s.P2.data(), *dZc = s.dZ2.data();
  if (sv)
    pair_conv<T, A>(g, 1, c2, x, h, rp, P2);
  else
    gru_gates<T, A>(g, c1, c2, x, h, P, s.zp.data(), s.rp.data(), P2);
  // H' = H + z (cand - H): dZ_cand, dZ_z and the direct dH term
  each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
    V cand = sv ? vload<V>(sv + 2 * pl + p + k) : tanh_(stencil(g, c2, 0, P2, q, k));
    V zz = vload<V>(zp + p + k), hv = tload(h + p + k), dhv = tload(dhn + p + k);
    accum_dw(g, g2, 0, P2, dZc, q, k, dhv * zz * (one - cand * cand));
    accum_dw(g, g1, 0, P, dZ, q, k, dhv * (cand - hv) * zz * (one - zz));
    vstore(dha + p + k, dhv * (one - zz));
  });
  // back through the candidate's pair conv: dX, d(rH) -> dH (r path), dr -> dZ_r
  each<A>(g, [&](int64_t p, int64_t q, int64_t k) {
    V dp = stencil_t(g, c2, 0, dZc, q, k);
    V rv = vload<V>(rp + p + k), hv = tload(h + p + k), xv = tload(x + p + k);
    V drh = vload<V>(c2.pb + k) * dp;
    vstore(dxa + p + k, vload<V>(c2.pa + k) * dp);
    vstore(dha + p + k, vload<V>(dha + p + k) + drh * rv);
    accum_pair(g, g2, 0, k, dp, xv, rv * hv);
    accum_dw(g, g1, 1, P, dZ, q, k, drh * hv * rv * (one - rv));
  });
  // back through the z, r pair convs
  pair_backward<T, A>(g, 2, c1, g1, dZ, x, h, dxa, dha, dx, dh);
}

template <class A> void init_scratch(Scratch<A>& s, const Geo& g, int cell, bool backward) {
  const int G = gates1(cell);
  s.P.assign(G * g.padded(), A(0));
  if (cell == GRU) {
    s.P2.assign(g.padded(), A(0));
    s.zp.assign(g.plane(), A(0));
    s.rp.assign(g.plane(), A(0));
  }
  if (!backward) return;
  s.dZ.assign(G * g.padded(), A(0));
  s.g1.assign(13 * G * g.N, A(0));
  s.t1.assign(13 * G * g.N, 0.0);
  if (cell == GRU) {
    s.dZ2.assign(g.padded(), A(0));
    s.dxa.assign(g.plane(), A(0));
    s.dha.assign(g.plane(), A(0));
    s.g2.assign(13 * g.N, A(0));
    s.t2.assign(13 * g.N, 0.0);
  }
}

template <class T, class A> void run(const Args& a, bool backward, int nthreads) {
  const Geo g(a.H, a.W, a.N);
  int nt = nthreads < 1 ? 1 : nthreads;
  if (nt > a.B) nt = int(a.B);
  std::vector<Scratch<A>> scratch(nt);
  auto work = [&](int t) {
    Scratch<A>& s = scratch[t];
    init_scratch(s, g, a.cell, backward);
    for (int64_t b = t; b < a.B; b += nt) {  // fixed round-robin: the sums' order is fixed
      if (!backward) {
        forward_image<T, A>(a, g, b, s);
        continue;
      }
      backward_image<T, A>(a, g, b, s);
      for (size_t i = 0; i < s.g1.size(); ++i) s.t1[i] += s.g1[i];
      for (size_t i = 0; i < s.g2.size(); ++i) s.t2[i] += s.g2[i];
    }
  };
  if (nt == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 1; t < nt; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
  }
  if (!backward) return;
  auto reduce = [&](void* out, std::vector<double> Scratch<A>::*tot) {
    A* o = static_cast<A*>(out);
    const size_t n = (scratch[0].*tot).size();
    for (size_t i = 0; i < n; ++i) {
      double sum = 0;
      for (int t = 0; t < nt; ++t) sum += (scratch[t].*tot)[i];
      o[i] = A(sum);
    }
  };
  reduce(a.dp1, &Scratch<A>::t1);
  if (a.cell == GRU) reduce(a.dp2, &Scratch<A>::t2);
}

int dispatch(int dtype, const Args& a, bool backward, int nthreads) {
  if (a.cell < 0 || a.cell > 2 || a.B < 1 || a.H < 1 || a.W < 1 || a.N < 1) return 2;
  switch (dtype) {
    case 0: if (a.N % VT<float>::L) return 3; run<float, float>(a, backward, nthreads); return 0;
    case 1: if (a.N % VT<float>::L) return 3; run<bf16, float>(a, backward, nthreads); return 0;
    case 2: if (a.N % VT<double>::L) return 3; run<double, double>(a, backward, nthreads); return 0;
    default: return 1;
  }
}

}  // namespace

extern "C" {

// 1: abi; the number of channels one vector holds (N must be a multiple of it).
int regcell_abi_version() { return 2; }
int regcell_saved_planes(int cell) { return saved_planes(cell); }
int regcell_lanes(int dtype) { return dtype == 2 ? VT<double>::L : VT<float>::L; }

// cell: 0 rnn, 1 gru, 2 lstm; dtype: 0 float32, 1 bfloat16 (float parameters), 2 float64.
// p2 (the GRU's candidate conv) may be null for the others; c, cn only for the LSTM.
// saved: null, or B x saved_planes(cell) x H x W x N values of the parameters' type that
// forward fills and backward reads instead of recomputing the gates.
int regcell_forward(int cell, int dtype, int64_t B, int64_t H, int64_t W, int64_t N,
                    const void* x, const void* h, const void* c, const void* p1,
                    const void* p2, void* hn, void* cn, void* saved, int nthreads) {
  Args a{cell, B, H, W, N, x, h, c, p1, p2, hn, cn,
         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, saved};
  return dispatch(dtype, a, false, nthreads);
}

int regcell_backward(int cell, int dtype, int64_t B, int64_t H, int64_t W, int64_t N,
                     const void* x, const void* h, const void* c, const void* p1,
                     const void* p2, const void* dhn, const void* dcn, void* dx, void* dh,
                     void* dc, void* dp1, void* dp2, const void* saved, int nthreads) {
  Args a{cell, B, H, W, N, x, h, c, p1, p2, nullptr, nullptr, dhn, dcn, dx, dh, dc, dp1, dp2,
         const_cast<void*>(saved)};
  return dispatch(dtype, a, true, nthreads);
}

}  // extern "C"
