/* Kernels of the transformer layers (MedTensor's Transformer.swift): LayerNorm, exact GELU, multi-head scaled
 * dot-product attention, row-wise bias and column sums; forward and backward. Like blocked.c, each worker is compiled
 * for AVX-512, AVX2 and the baseline and picked at run time (dispatch.h), and runs on the OpenMP threads of
 * mk_parallel_for. exp and erf are written out (polynomials, relative error about 1e-7) so that the compiler
 * vectorises the loops that use them. */
#include "CMedKernels.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#pragma clang diagnostic ignored "-Wpsabi"

/* e^x for x in float range: x = n ln2 + r, |r| <= ln2/2, e^r by Cephes' degree-6 polynomial, 2^n from the exponent
 * bits. Underflows to 0 below -87.3, saturates at 88.7. */
INLINE float vexp(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float n = __builtin_roundevenf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float r2 = r * r;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r
              + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7). */
INLINE float verf(float x) {
    float z = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t) * vexp(-z * z);
    return x < 0 ? -y : y;
}

/* Σ a[l] b[l] in 16 independent lanes (vectorised without reassociating a single sum), then the lanes added. */
INLINE float dot16(const float *a, const float *b, long n) {
    float acc[16] = {0};
    long l = 0;
    for (; l + 16 <= n; l += 16) for (int k = 0; k < 16; k++) acc[k] += a[l + k] * b[l + k];
    float s = 0;
    for (int k = 0; k < 16; k++) s += acc[k];
    for (; l < n; l++) s += a[l] * b[l];
    return s;
}

/* Σ a[l] in 16 lanes. */
INLINE float sum16(const float *a, long n) {
    float acc[16] = {0};
    long l = 0;
    for (; l + 16 <= n; l += 16) for (int k = 0; k < 16; k++) acc[k] += a[l + k];
    float s = 0;
    for (int k = 0; k < 16; k++) s += acc[k];
    for (; l < n; l++) s += a[l];
    return s;
}

/* ---- LayerNorm over rows of d values: y = (x - mean) * rstd * gamma + beta ---- */

typedef struct { const float *x, *gamma, *beta; float *y, *mean, *rstd; long d; float eps; } ln_t;

INLINE void ln_worker_body(void *ctx, long begin, long end) {
    ln_t *a = ctx;
    const long d = a->d;
    for (long r = begin; r < end; r++) {
        const float *x = a->x + r * d;
        float *y = a->y + r * d;
        float m = sum16(x, d) / (float)d;
        float acc[16] = {0};
        long j0 = 0;
        for (; j0 + 16 <= d; j0 += 16) for (int k = 0; k < 16; k++) { float t = x[j0 + k] - m; acc[k] += t * t; }
        float q = 0;
        for (int k = 0; k < 16; k++) q += acc[k];
        for (; j0 < d; j0++) { float t = x[j0] - m; q += t * t; }
        float rs = 1.0f / sqrtf(q / (float)d + a->eps);
        a->mean[r] = m; a->rstd[r] = rs;
        for (long j = 0; j < d; j++) y[j] = (x[j] - m) * rs * a->gamma[j] + a->beta[j];
    }
}
KERNELS(ln_worker)

void mk_layernorm(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *rstd, long rows, long d, float eps) {
    ln_t a = {x, gamma, beta, y, mean, rstd, d, eps};
    mk_parallel_for(rows, 16, ln_worker, &a);
}

typedef struct { const float *dy, *x, *gamma, *mean, *rstd; float *dx, *partial; long rows, d, per; } lnb_t;

/* One part of the rows: dx for each row, and the part's sums of dy * xhat and dy into partial[part][2][d]. */
INLINE void lnb_worker_body(void *ctx, long begin, long end) {
    lnb_t *a = ctx;
    const long d = a->d;
    for (long part = begin; part < end; part++) {
        float *dg = a->partial + part * 2 * d, *db = dg + d;
        memset(dg, 0, sizeof(float) * 2 * d);
        long r1 = (part + 1) * a->per < a->rows ? (part + 1) * a->per : a->rows;
        for (long r = part * a->per; r < r1; r++) {
            const float *x = a->x + r * d, *dy = a->dy + r * d;
            float *dx = a->dx + r * d;
            const float m = a->mean[r], rs = a->rstd[r];
            float a1[16] = {0}, a2[16] = {0};
            long j0 = 0;
            for (; j0 + 16 <= d; j0 += 16)
                for (int k = 0; k < 16; k++) {
                    long j = j0 + k;
                    float xh = (x[j] - m) * rs, g = dy[j] * a->gamma[j];
                    a1[k] += g; a2[k] += g * xh;
                }
            float s1 = 0, s2 = 0;
            for (int k = 0; k < 16; k++) { s1 += a1[k]; s2 += a2[k]; }
            for (; j0 < d; j0++) { float xh = (x[j0] - m) * rs, g = dy[j0] * a->gamma[j0]; s1 += g; s2 += g * xh; }
            for (long j = 0; j < d; j++) { float xh = (x[j] - m) * rs; dg[j] += dy[j] * xh; db[j] += dy[j]; }
            s1 /= (float)d; s2 /= (float)d;
            for (long j = 0; j < d; j++) {
                float xh = (x[j] - m) * rs;
                dx[j] = rs * (dy[j] * a->gamma[j] - s1 - xh * s2);
            }
        }
    }
}
KERNELS(lnb_worker)

void mk_layernorm_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *rstd, float *dx,
                           float *dgamma, float *dbeta, long rows, long d) {
    long parts = rows < 32 ? rows : 32, per = (rows + parts - 1) / parts;
    parts = (rows + per - 1) / per;
    float *partial = malloc(sizeof(float) * 2 * d * parts);
    lnb_t a = {dy, x, gamma, mean, rstd, dx, partial, rows, d, per};
    mk_parallel_for(parts, 1, lnb_worker, &a);
    for (long p = 0; p < parts; p++)
        for (long j = 0; j < d; j++) { dgamma[j] += partial[p * 2 * d + j]; dbeta[j] += partial[p * 2 * d + d + j]; }
    free(partial);
}

/* ---- GELU, exact: y = x/2 (1 + erf(x / sqrt 2)); dy/dx = (1 + erf(x / sqrt 2))/2 + x exp(-x^2/2) / sqrt(2 pi) ---- */

typedef struct { const float *x, *g; float *y; } gelu_t;

INLINE void gelu_worker_body(void *ctx, long begin, long end) {
    gelu_t *a = ctx;
    for (long i = begin; i < end; i++) { float x = a->x[i]; a->y[i] = 0.5f * x * (1.0f + verf(x * 0.70710678118654752f)); }
}
KERNELS(gelu_worker)

INLINE void gelub_worker_body(void *ctx, long begin, long end) {
    gelu_t *a = ctx;
    for (long i = begin; i < end; i++) {
        float x = a->x[i];
        float cdf = 0.5f * (1.0f + verf(x * 0.70710678118654752f)), pdf = 0.39894228040143268f * vexp(-0.5f * x * x);
        a->y[i] = a->g[i] * (cdf + x * pdf);
    }
}
KERNELS(gelub_worker)

void mk_gelu(const float *x, float *y, long count) {
    gelu_t a = {x, NULL, y};
    mk_parallel_for(count, 1 << 14, gelu_worker, &a);
}

void mk_gelu_backward(const float *x, const float *g, float *dx, long count) {
    gelu_t a = {x, g, dx};
    mk_parallel_for(count, 1 << 14, gelub_worker, &a);
}

/* ---- rows + bias, and column sums (a linear layer's bias and its gradient) ---- */

typedef struct { float *y; const float *v; float *out; long rows, d; } rows_t;

INLINE void addbias_worker_body(void *ctx, long begin, long end) {
    rows_t *a = ctx;
    for (long r = begin; r < end; r++) for (long j = 0; j < a->d; j++) a->y[r * a->d + j] += a->v[j];
}
KERNELS(addbias_worker)

typedef struct { const float *a, *b; float *out; } add_t;

INLINE void add_worker_body(void *ctx, long begin, long end) {
    add_t *a = ctx;
    for (long i = begin; i < end; i++) a->out[i] = a->a[i] + a->b[i];
}
KERNELS(add_worker)

void mk_add(const float *a, const float *b, float *out, long count) {
    add_t x = {a, b, out};
    mk_parallel_for(count, 1 << 15, add_worker, &x);
}

void mk_add_bias(float *y, const float *bias, long rows, long d) {
    rows_t a = {y, bias, NULL, rows, d};
    mk_parallel_for(rows, 64, addbias_worker, &a);
}

/* Column sums in row blocks: each block sums its rows into its own partial row (vectorised over the columns), then
 * the partials are added in block order. */
typedef struct { const float *v; float *partial; long rows, d, per; } colsum_t;

INLINE void colsum_worker_body(void *ctx, long begin, long end) {
    colsum_t *a = ctx;
    for (long part = begin; part < end; part++) {
        float *out = a->partial + part * a->d;
        for (long j = 0; j < a->d; j++) out[j] = 0;
        long r1 = (part + 1) * a->per < a->rows ? (part + 1) * a->per : a->rows;
        for (long r = part * a->per; r < r1; r++) {
            const float *row = a->v + r * a->d;
            for (long j = 0; j < a->d; j++) out[j] += row[j];
        }
    }
}
KERNELS(colsum_worker)

void mk_column_sums(const float *v, float *out, long rows, long d) {
    long parts = rows / 64 < 1 ? 1 : (rows / 64 > 16 ? 16 : rows / 64), per = (rows + parts - 1) / parts;
    parts = (rows + per - 1) / per;
    float *partial = malloc(sizeof(float) * d * parts);
    colsum_t a = {v, partial, rows, d, per};
    mk_parallel_for(parts, 1, colsum_worker, &a);
    for (long j = 0; j < d; j++) out[j] = 0;
    for (long p = 0; p < parts; p++) for (long j = 0; j < d; j++) out[j] += partial[p * d + j];
    free(partial);
}

/* ---- multi-head scaled dot-product attention ----
 * qkv: [batch][tokens][3][heads][dh] (a fused QKV projection's output, PyTorch's reshape(b, t, 3, heads, dh));
 * out: [batch][tokens][heads][dh]; probs: [batch][heads][tokens][tokens], kept for the backward pass.
 * One work item per (batch, head); Q, K, V and the gradients are gathered into contiguous scratch rows. */

typedef struct { const float *qkv, *probs, *dout; float *out, *probs_out, *dqkv; long batch, tokens, heads, dh; float scale; } attn_t;

/* Per (batch, head) the kernels gather Q, K, V into scratch rows padded to dp = dh rounded up to 16 floats, and K or V
 * transposed into dh x tp (tp = tokens rounded up to 16), zero-padded, so that every inner loop runs over whole
 * 16-float vectors held in registers. */
static inline long round16(long n) { return (n + 15) / 16 * 16; }

INLINE void gather_rows(const float *qkv, float *dst, long b, long which, long h, long T, long H, long dh, long dp) {
    for (long t = 0; t < T; t++) {
        const float *src = qkv + (((b * T + t) * 3 + which) * H + h) * dh;
        for (long l = 0; l < dh; l++) dst[t * dp + l] = src[l];
        for (long l = dh; l < dp; l++) dst[t * dp + l] = 0;
    }
}

INLINE void gather_columns(const float *qkv, float *dst, long b, long which, long h, long T, long H, long dh, long tp) {
    for (long l = 0; l < dh; l++) for (long t = T; t < tp; t++) dst[l * tp + t] = 0;
    for (long t = 0; t < T; t++) {
        const float *src = qkv + (((b * T + t) * 3 + which) * H + h) * dh;
        for (long l = 0; l < dh; l++) dst[l * tp + t] = src[l];
    }
}

/* s[j] = scale * sum_l x[l] mt[l][j] for j < tp (mt: dh x tp): one row of Q K^T or dO V^T, 32 or 16 columns at a time
 * in registers. */
INLINE void row_times(const float *x, const float *mt, float *s, long tp, long dh, float scale) {
    long j0 = 0;
    for (; j0 + 32 <= tp; j0 += 32) {
        float acc[32] = {0};
        for (long l = 0; l < dh; l++) {
            const float xl = x[l] * scale, *row = mt + l * tp + j0;
            for (int k = 0; k < 32; k++) acc[k] += xl * row[k];
        }
        memcpy(s + j0, acc, sizeof acc);
    }
    for (; j0 < tp; j0 += 16) {
        float acc[16] = {0};
        for (long l = 0; l < dh; l++) {
            const float xl = x[l] * scale, *row = mt + l * tp + j0;
            for (int k = 0; k < 16; k++) acc[k] += xl * row[k];
        }
        memcpy(s + j0, acc, sizeof acc);
    }
}

/* out[l] = sum_t w[t * ws] rows[t][l] for l < dp (rows: n x dp): a weighted sum of rows (P V, dS K, dS^T Q, P^T dO), 32
 * or 16 columns at a time in registers. */
INLINE void combine_rows(const float *w, long ws, const float *rows, long n, long dp, float *out) {
    long l0 = 0;
    for (; l0 + 32 <= dp; l0 += 32) {
        float acc[32] = {0};
        for (long t = 0; t < n; t++) {
            const float wt = w[t * ws], *r = rows + t * dp + l0;
            for (int k = 0; k < 32; k++) acc[k] += wt * r[k];
        }
        memcpy(out + l0, acc, sizeof acc);
    }
    for (; l0 < dp; l0 += 16) {
        float acc[16] = {0};
        for (long t = 0; t < n; t++) {
            const float wt = w[t * ws], *r = rows + t * dp + l0;
            for (int k = 0; k < 16; k++) acc[k] += wt * r[k];
        }
        memcpy(out + l0, acc, sizeof acc);
    }
}

INLINE void attn_worker_body(void *ctx, long begin, long end) {
    attn_t *a = ctx;
    const long T = a->tokens, H = a->heads, dh = a->dh, dp = round16(dh), tp = round16(T);
    float *scratch = malloc(sizeof(float) * (2 * T * dp + dh * tp + tp + dp));
    float *q = scratch, *v = q + T * dp, *kt = v + T * dp, *s = kt + dh * tp, *o = s + tp;
    for (long item = begin; item < end; item++) {
        long b = item / H, h = item % H;
        gather_rows(a->qkv, q, b, 0, h, T, H, dh, dp);
        gather_columns(a->qkv, kt, b, 1, h, T, H, dh, tp);
        gather_rows(a->qkv, v, b, 2, h, T, H, dh, dp);
        for (long i = 0; i < T; i++) {
            float *p = a->probs_out + (item * T + i) * T;
            row_times(q + i * dp, kt, s, tp, dh, a->scale);
            float mx = -INFINITY;
            for (long j = 0; j < T; j++) mx = s[j] > mx ? s[j] : mx;
            for (long j = 0; j < T; j++) p[j] = vexp(s[j] - mx);
            float inv = 1.0f / sum16(p, T);
            for (long j = 0; j < T; j++) p[j] *= inv;
            combine_rows(p, 1, v, T, dp, o);
            float *dst = a->out + ((b * T + i) * H + h) * dh;
            for (long l = 0; l < dh; l++) dst[l] = o[l];
        }
    }
    free(scratch);
}
KERNELS(attn_worker)

void mk_attention(const float *qkv, float *out, float *probs, long batch, long tokens, long heads, long dh, float scale) {
    attn_t a = {qkv, NULL, NULL, out, probs, NULL, batch, tokens, heads, dh, scale};
    mk_parallel_for(batch * heads, 1, attn_worker, &a);
}

/* Backward of one (batch, head): dP = dO V^T; dS = P (dP - rowsum(dP P)) scale; dQ = dS K; dK = dS^T Q; dV = P^T dO. */
INLINE void attnb_worker_body(void *ctx, long begin, long end) {
    attn_t *a = ctx;
    const long T = a->tokens, H = a->heads, dh = a->dh, dp = round16(dh), tp = round16(T);
    float *scratch = malloc(sizeof(float) * (4 * T * dp + dh * tp + T * T + tp + dp));
    float *q = scratch, *k = q + T * dp, *dout = k + T * dp, *ps = dout + T * dp, *vt = ps + T * dp, *ds = vt + dh * tp, *row = ds + T * T,
          *o = row + tp;
    (void)ps;
    for (long item = begin; item < end; item++) {
        long b = item / H, h = item % H;
        const float *P = a->probs + item * T * T;
        gather_rows(a->qkv, q, b, 0, h, T, H, dh, dp);
        gather_rows(a->qkv, k, b, 1, h, T, H, dh, dp);
        gather_columns(a->qkv, vt, b, 2, h, T, H, dh, tp);
        for (long t = 0; t < T; t++) {
            const float *src = a->dout + ((b * T + t) * H + h) * dh;
            for (long l = 0; l < dh; l++) dout[t * dp + l] = src[l];
            for (long l = dh; l < dp; l++) dout[t * dp + l] = 0;
        }
        for (long i = 0; i < T; i++) {
            const float *p = P + i * T;
            row_times(dout + i * dp, vt, row, tp, dh, 1.0f);
            float dot = 0;
            for (long j = 0; j < T; j++) dot += row[j] * p[j];
            for (long j = 0; j < T; j++) ds[i * T + j] = p[j] * (row[j] - dot) * a->scale;
        }
        for (long i = 0; i < T; i++) {
            float *dst = a->dqkv + (((b * T + i) * 3 + 0) * H + h) * dh;
            combine_rows(ds + i * T, 1, k, T, dp, o);                       /* dQ_i = sum_j dS_ij K_j */
            for (long l = 0; l < dh; l++) dst[l] = o[l];
        }
        for (long j = 0; j < T; j++) {
            float *dk = a->dqkv + (((b * T + j) * 3 + 1) * H + h) * dh, *dv = dk + H * dh;
            combine_rows(ds + j, T, q, T, dp, o);                           /* dK_j = sum_i dS_ij Q_i */
            for (long l = 0; l < dh; l++) dk[l] = o[l];
            combine_rows(P + j, T, dout, T, dp, o);                         /* dV_j = sum_i P_ij dO_i */
            for (long l = 0; l < dh; l++) dv[l] = o[l];
        }
    }
    free(scratch);
}
KERNELS(attnb_worker)

void mk_attention_backward(const float *qkv, const float *probs, const float *dout, float *dqkv, long batch, long tokens, long heads, long dh,
                           float scale) {
    attn_t a = {qkv, probs, dout, NULL, NULL, dqkv, batch, tokens, heads, dh, scale};
    mk_parallel_for(batch * heads, 1, attnb_worker, &a);
}
