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

/* ---- LayerNorm over rows of d values: y = (x - mean) * rstd * gamma + beta ---- */

typedef struct { const float *x, *gamma, *beta; float *y, *mean, *rstd; long d; float eps; } ln_t;

INLINE void ln_worker_body(void *ctx, long begin, long end) {
    ln_t *a = ctx;
    const long d = a->d;
    for (long r = begin; r < end; r++) {
        const float *x = a->x + r * d;
        float *y = a->y + r * d;
        float s = 0;
        for (long j = 0; j < d; j++) s += x[j];
        float m = s / (float)d, q = 0;
        for (long j = 0; j < d; j++) { float t = x[j] - m; q += t * t; }
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
            float s1 = 0, s2 = 0;
            for (long j = 0; j < d; j++) {
                float xh = (x[j] - m) * rs, g = dy[j] * a->gamma[j];
                s1 += g; s2 += g * xh;
                dg[j] += dy[j] * xh; db[j] += dy[j];
            }
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

void mk_add_bias(float *y, const float *bias, long rows, long d) {
    rows_t a = {y, bias, NULL, rows, d};
    mk_parallel_for(rows, 64, addbias_worker, &a);
}

INLINE void colsum_worker_body(void *ctx, long begin, long end) {
    rows_t *a = ctx;
    /* Columns in strips of 64: each worker owns its strip, rows summed in order. */
    for (long s = begin; s < end; s++) {
        long j0 = s * 64, j1 = j0 + 64 < a->d ? j0 + 64 : a->d;
        for (long j = j0; j < j1; j++) a->out[j] = 0;
        for (long r = 0; r < a->rows; r++) for (long j = j0; j < j1; j++) a->out[j] += a->v[r * a->d + j];
    }
}
KERNELS(colsum_worker)

void mk_column_sums(const float *v, float *out, long rows, long d) {
    rows_t a = {NULL, v, out, rows, d};
    mk_parallel_for((d + 63) / 64, 1, colsum_worker, &a);
}

/* ---- multi-head scaled dot-product attention ----
 * qkv: [batch][tokens][3][heads][dh] (a fused QKV projection's output, PyTorch's reshape(b, t, 3, heads, dh));
 * out: [batch][tokens][heads][dh]; probs: [batch][heads][tokens][tokens], kept for the backward pass.
 * One work item per (batch, head); Q, K, V and the gradients are gathered into contiguous scratch rows. */

typedef struct { const float *qkv, *probs, *dout; float *out, *probs_out, *dqkv; long batch, tokens, heads, dh; float scale; } attn_t;

INLINE void gather_rows(const float *qkv, float *dst, long b, long which, long h, long T, long H, long dh) {
    for (long t = 0; t < T; t++) memcpy(dst + t * dh, qkv + (((b * T + t) * 3 + which) * H + h) * dh, sizeof(float) * dh);
}

INLINE void attn_worker_body(void *ctx, long begin, long end) {
    attn_t *a = ctx;
    const long T = a->tokens, H = a->heads, dh = a->dh;
    float *scratch = malloc(sizeof(float) * (3 * T * dh + dh));
    float *q = scratch, *k = q + T * dh, *v = k + T * dh, *o = v + T * dh;
    for (long item = begin; item < end; item++) {
        long b = item / H, h = item % H;
        gather_rows(a->qkv, q, b, 0, h, T, H, dh);
        gather_rows(a->qkv, k, b, 1, h, T, H, dh);
        gather_rows(a->qkv, v, b, 2, h, T, H, dh);
        for (long i = 0; i < T; i++) {
            float *p = a->probs_out + (item * T + i) * T;
            float mx = -INFINITY;
            for (long j = 0; j < T; j++) {
                float s = 0;
                for (long l = 0; l < dh; l++) s += q[i * dh + l] * k[j * dh + l];
                p[j] = s * a->scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            float sum = 0;
            for (long j = 0; j < T; j++) { p[j] = vexp(p[j] - mx); sum += p[j]; }
            float inv = 1.0f / sum;
            for (long j = 0; j < T; j++) p[j] *= inv;
            float *out = a->out + ((b * T + i) * H + h) * dh;
            for (long l = 0; l < dh; l++) o[l] = 0;
            for (long j = 0; j < T; j++) for (long l = 0; l < dh; l++) o[l] += p[j] * v[j * dh + l];
            memcpy(out, o, sizeof(float) * dh);
        }
    }
    free(scratch);
}
KERNELS(attn_worker)

void mk_attention(const float *qkv, float *out, float *probs, long batch, long tokens, long heads, long dh, float scale) {
    attn_t a = {qkv, NULL, NULL, out, probs, NULL, batch, tokens, heads, dh, scale};
    mk_parallel_for(batch * heads, 1, attn_worker, &a);
}

INLINE void attnb_worker_body(void *ctx, long begin, long end) {
    attn_t *a = ctx;
    const long T = a->tokens, H = a->heads, dh = a->dh;
    float *scratch = malloc(sizeof(float) * (7 * T * dh + 2 * T));
    float *q = scratch, *k = q + T * dh, *v = k + T * dh, *dout = v + T * dh, *dq = dout + T * dh, *dk = dq + T * dh, *dv = dk + T * dh;
    float *dp = dv + T * dh, *ds = dp + T;
    for (long item = begin; item < end; item++) {
        long b = item / H, h = item % H;
        gather_rows(a->qkv, q, b, 0, h, T, H, dh);
        gather_rows(a->qkv, k, b, 1, h, T, H, dh);
        gather_rows(a->qkv, v, b, 2, h, T, H, dh);
        for (long t = 0; t < T; t++) memcpy(dout + t * dh, a->dout + ((b * T + t) * H + h) * dh, sizeof(float) * dh);
        memset(dk, 0, sizeof(float) * T * dh);
        memset(dv, 0, sizeof(float) * T * dh);
        for (long i = 0; i < T; i++) {
            const float *p = a->probs + (item * T + i) * T;
            const float *go = dout + i * dh;
            float dot = 0;
            for (long j = 0; j < T; j++) {
                float s = 0;
                for (long l = 0; l < dh; l++) s += go[l] * v[j * dh + l];
                dp[j] = s;
                dot += s * p[j];
                for (long l = 0; l < dh; l++) dv[j * dh + l] += p[j] * go[l];
            }
            float *gq = dq + i * dh;
            for (long l = 0; l < dh; l++) gq[l] = 0;
            for (long j = 0; j < T; j++) {
                float g = p[j] * (dp[j] - dot) * a->scale;
                ds[j] = g;
                for (long l = 0; l < dh; l++) gq[l] += g * k[j * dh + l];
                for (long l = 0; l < dh; l++) dk[j * dh + l] += g * q[i * dh + l];
            }
        }
        for (long t = 0; t < T; t++) {
            memcpy(a->dqkv + (((b * T + t) * 3 + 0) * H + h) * dh, dq + t * dh, sizeof(float) * dh);
            memcpy(a->dqkv + (((b * T + t) * 3 + 1) * H + h) * dh, dk + t * dh, sizeof(float) * dh);
            memcpy(a->dqkv + (((b * T + t) * 3 + 2) * H + h) * dh, dv + t * dh, sizeof(float) * dh);
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
