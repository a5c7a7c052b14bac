/* Hand-written kernels of MedTensor that are not oneDNN primitives: layout conversion, normalisation, pooling, pixel
 * shuffle, ReLU, Adam, and the parallel loop that runs them (and MedSelect's Swift loops) on oneDNN's own OpenMP
 * threads.
 *
 * Width of the machine: each hot loop is compiled three times (x86-64-v4: AVX-512; x86-64-v3: AVX2 + FMA; the
 * x86-64 baseline) and chosen once at run time from the processor's features (runtime dispatch, KERNELS below), so one
 * portable binary runs 512-bit vectors on AVX-512 and 256-bit vectors on AVX2. ONEDNN_MAX_CPU_ISA caps the choice as it
 * caps oneDNN's (AVX2, AVX, SSE41), so one variable makes an AVX-512 machine behave like an AVX2 one for both. The
 * block kernels are written with vector types of one channel block (8 or 16 floats).
 *
 * Blocked layout (MedTensor's Layout.blocked8 / blocked16, oneDNN's nChw8c / nChw16c): an image's channels in blocks
 * of B, each block stored pixel by pixel with its B channel values together, [n][c / B][h][w][c % B]. An "item" is
 * one (image, channel block): hw * B contiguous floats. */
#include "CMedKernels.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dispatch.h"

const char *mk_kernel_isa(void) { int l = isa_level(); return l == 4 ? "avx512" : l == 3 ? "avx2" : "baseline"; }

/* ---- parallel loop on the OpenMP threads oneDNN uses (libgomp's ABI) ---- */

extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);
extern int omp_in_parallel(void);
extern void omp_set_num_threads(int);

typedef struct {
    void (*fn)(void *, long, long);
    void *ctx;
    long count, chunk;
    long next; /* atomic */
} job_t;

static void job_worker(void *p) {
    job_t *j = p;
    for (;;) {
        long begin = __atomic_fetch_add(&j->next, j->chunk, __ATOMIC_RELAXED);
        if (begin >= j->count) break;
        long end = begin + j->chunk < j->count ? begin + j->chunk : j->count;
        j->fn(j->ctx, begin, end);
    }
}

void mk_parallel_for(long count, long chunk, void (*fn)(void *ctx, long begin, long end), void *ctx) {
    if (count <= 0) return;
    if (chunk < 1) chunk = 1;
    int threads = omp_get_max_threads();
    if (count <= chunk || threads <= 1 || omp_in_parallel()) { fn(ctx, 0, count); return; }
    long chunks = (count + chunk - 1) / chunk;
    job_t j = {fn, ctx, count, chunk, 0};
    GOMP_parallel(job_worker, &j, (unsigned)(chunks < threads ? chunks : threads), 0);
}

int mk_threads(void) { return omp_get_max_threads(); }
void mk_set_threads(int n) { if (n > 0) omp_set_num_threads(n); }

/* ---- layout conversion ---- */

typedef struct { const float *src; float *dst; long blocks, hw; int block, to_blocked; } convert_t;

INLINE void convert_item(const float *s, float *d, long hw, const int B, int to_blocked) {
    /* s, d: the item's B planes (plain) or its hw * B interleaved values (blocked). Tiles of 64 pixels keep both sides
     * in cache. */
    for (long p0 = 0; p0 < hw; p0 += 64) {
        long p1 = p0 + 64 < hw ? p0 + 64 : hw;
        if (to_blocked) {
            for (int l = 0; l < B; l++) for (long p = p0; p < p1; p++) d[p * B + l] = s[l * hw + p];
        } else {
            for (int l = 0; l < B; l++) for (long p = p0; p < p1; p++) d[l * hw + p] = s[p * B + l];
        }
    }
}

INLINE void convert_worker_body(void *ctx, long begin, long end) {
    convert_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long off = item * a->hw * a->block;
        if (a->block == 16) convert_item(a->src + off, a->dst + off, a->hw, 16, a->to_blocked);
        else convert_item(a->src + off, a->dst + off, a->hw, 8, a->to_blocked);
    }
}
KERNELS(convert_worker)

void mk_convert_layout(const float *src, float *dst, long n, long c, long hw, int block, int to_blocked) {
    mk_count_activation_reorder();
    convert_t a = {src, dst, c / block, hw, block, to_blocked};
    mk_parallel_for(n * (c / block), 1, convert_worker, &a);
}

/* ---- per-block vector kernels, written once for blocks of 8 and of 16 channels ----
 * vN: N floats (one 256-bit register with AVX2, one 512-bit register with AVX-512), vdN: N doubles, viN: N int32.
 * Loads and stores go through memcpy (unaligned; the compiler emits single vector moves). */
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
typedef double vd8 __attribute__((vector_size(64)));
typedef double vd16 __attribute__((vector_size(128)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef int32_t vi16 __attribute__((vector_size(64)));

#define BLOCK_KERNELS(N)                                                                                                   \
INLINE v##N load##N(const float *p) { v##N v; memcpy(&v, p, sizeof v); return v; }                                       \
INLINE void store##N(float *p, v##N v) { memcpy(p, &v, sizeof v); }                                                      \
INLINE v##N splat##N(float x) { return (v##N){0} + x; }                                                                  \
/* Lanes of a where m is set (all ones), else of b. */                                                                   \
INLINE v##N select##N(vi##N m, v##N a, v##N b) { return (v##N)(((vi##N)a & m) | ((vi##N)b & ~m)); }                     \
INLINE v##N relu##N(v##N v) { return select##N(v > 0, v, (v##N){0}); }                                                 \
                                                                                                                           \
/* Mean and centred sum of squares of one item's hw vectors in one pass over memory: per chunk of 64 pixels (in L1)  \
 * the chunk's mean and centred sum of squares, merged into the running ones in double (Chan et al.). */                \
INLINE void stats##N(const float *x, long hw, double *mean, double *m2) {                                                 \
    vd##N mu = {0}, q = {0};                                                                                               \
    double count = 0;                                                                                                      \
    for (long i = 0; i < hw; i += 64) {                                                                                    \
        long len = hw - i < 64 ? hw - i : 64;                                                                              \
        const float *c = x + i * N;                                                                                        \
        v##N a = {0}, b = {0};                                                                                             \
        long j = 0;                                                                                                        \
        for (; j + 1 < len; j += 2) { a += load##N(c + j * N); b += load##N(c + (j + 1) * N); }                           \
        if (j < len) a += load##N(c + j * N);                                                                              \
        v##N cm = (a + b) / (float)len, s2 = {0};                                                                          \
        for (j = 0; j < len; j++) { v##N d = load##N(c + j * N) - cm; s2 += d * d; }                                      \
        double nb = (double)len, n = count + nb;                                                                           \
        vd##N delta = __builtin_convertvector(cm, vd##N) - mu;                                                             \
        mu += delta * (nb / n);                                                                                            \
        q += __builtin_convertvector(s2, vd##N) + delta * delta * (count * nb / n);                                        \
        count = n;                                                                                                         \
    }                                                                                                                      \
    memcpy(mean, &mu, sizeof mu); memcpy(m2, &q, sizeof q);                                                                \
}                                                                                                                          \
                                                                                                                           \
INLINE void apply##N(const float *x, float *y, long hw, const float *scale, const float *shift, int relu) {                \
    v##N sc = load##N(scale), sh = load##N(shift);                                                                         \
    if (relu) for (long i = 0; i < hw; i++) store##N(y + i * N, relu##N(load##N(x + i * N) * sc + sh));                    \
    else for (long i = 0; i < hw; i++) store##N(y + i * N, load##N(x + i * N) * sc + sh);                                  \
}                                                                                                                          \
                                                                                                                           \
/* Σ dy and Σ dy (x − μ), dy zeroed where x·scale + shift <= 0 (the forward ReLU's cut). */                             \
INLINE void bsums##N(const float *g, const float *x, long hw, const float *scale, const float *shift, const float *mean,   \
                     int relu, double *sdy, double *sdyx) {                                                               \
    v##N sc = load##N(scale), sh = load##N(shift), mu = load##N(mean);                                                     \
    vd##N t1 = {0}, t2 = {0};                                                                                              \
    for (long i = 0; i < hw;) {                                                                                            \
        long end = i + 64 < hw ? i + 64 : hw;                                                                              \
        v##N a1 = {0}, a2 = {0};                                                                                           \
        for (; i < end; i++) {                                                                                             \
            v##N xv = load##N(x + i * N), d = load##N(g + i * N);                                                          \
            if (relu) d = select##N(xv * sc + sh > 0, d, (v##N){0});                                                       \
            a1 += d;                                                                                                       \
            a2 += d * (xv - mu);                                                                                           \
        }                                                                                                                  \
        t1 += __builtin_convertvector(a1, vd##N); t2 += __builtin_convertvector(a2, vd##N);                                \
    }                                                                                                                      \
    memcpy(sdy, &t1, sizeof t1); memcpy(sdyx, &t2, sizeof t2);                                                             \
}                                                                                                                          \
                                                                                                                           \
/* dx = k (m dy − Σdy − (x − μ) cterm), dy through the ReLU's cut. */                                                    \
INLINE void bapply##N(const float *g, const float *x, float *dx, long hw, const float *scale, const float *shift,          \
                      const float *mean, const float *k, const float *sdy, const float *cterm, float m, int relu) {       \
    v##N sc = load##N(scale), sh = load##N(shift), mu = load##N(mean), kk = load##N(k), s1 = load##N(sdy);                 \
    v##N ct = load##N(cterm), mv = splat##N(m);                                                                            \
    for (long i = 0; i < hw; i++) {                                                                                        \
        v##N xv = load##N(x + i * N), d = load##N(g + i * N);                                                              \
        if (relu) d = select##N(xv * sc + sh > 0, d, (v##N){0});                                                           \
        store##N(dx + i * N, kk * (mv * d - s1 - (xv - mu) * ct));                                                         \
    }                                                                                                                      \
}                                                                                                                          \
                                                                                                                           \
/* Max pooling of one item (a channel block's h x w plane); arg: storage index of each maximum (first one wins). */      \
INLINE void pool##N(const float *x, float *y, int32_t *arg, long item, long h, long w, long k) {                           \
    long ho = h / k, wo = w / k, base = item * h * w * N;                                                                  \
    vi##N lanes;                                                                                                           \
    for (int l = 0; l < N; l++) lanes[l] = l;                                                                              \
    for (long oy = 0; oy < ho; oy++) for (long ox = 0; ox < wo; ox++) {                                                    \
        v##N best = splat##N(-INFINITY);                                                                                   \
        vi##N at = lanes + (int32_t)(base + (oy * k * w + ox * k) * N);                                                    \
        for (long i = 0; i < k; i++) for (long j = 0; j < k; j++) {                                                        \
            long pos = (oy * k + i) * w + ox * k + j;                                                                      \
            v##N v = load##N(x + base + pos * N);                                                                          \
            vi##N better = v > best;                                                                                       \
            best = select##N(better, v, best);                                                                             \
            at = (better & (lanes + (int32_t)(base + pos * N))) | (~better & at);                                          \
        }                                                                                                                  \
        long o = (item * ho * wo + oy * wo + ox) * N;                                                                      \
        store##N(y + o, best);                                                                                             \
        memcpy(arg + o, &at, sizeof at);                                                                                   \
    }                                                                                                                      \
}                                                                                                                          \
                                                                                                                           \
/* One row y of depth to space (channel block b of image img), and its adjoint with the row's channel sums. */            \
INLINE void d2s##N(const float *z, const float *bias, float *out, long img, long b, long y, long ob, long h, long w, long s) { \
    long kk = s * s, hw = h * w, wo = w * s, ho = h * s;                                                                   \
    v##N bv = load##N(bias + b * N);                                                                                       \
    for (long xx = 0; xx < w; xx++) for (long i = 0; i < s; i++) for (long j = 0; j < s; j++)                             \
        store##N(out + ((img * ob + b) * ho * wo + (s * y + i) * wo + s * xx + j) * N,                                     \
                 load##N(z + ((img * kk * ob + (i * s + j) * ob + b) * hw + y * w + xx) * N) + bv);                        \
}                                                                                                                          \
INLINE void s2d##N(const float *g, float *gz, float *partial, long img, long b, long y, long ob, long h, long w, long s) {   \
    long kk = s * s, hw = h * w, wo = w * s, ho = h * s;                                                                   \
    v##N sum = {0};                                                                                                        \
    for (long xx = 0; xx < w; xx++) for (long i = 0; i < s; i++) for (long j = 0; j < s; j++) {                           \
        v##N v = load##N(g + ((img * ob + b) * ho * wo + (s * y + i) * wo + s * xx + j) * N);                              \
        store##N(gz + ((img * kk * ob + (i * s + j) * ob + b) * hw + y * w + xx) * N, v);                                  \
        sum += v;                                                                                                          \
    }                                                                                                                      \
    store##N(partial, sum);                                                                                                \
}

BLOCK_KERNELS(8)
BLOCK_KERNELS(16)

/* ---- normalisation (batch or instance), optionally fused with ReLU ----
 * Blocks of 8 or 16 lanes, or block 1: the plain NCHW layout, whose items are single channel planes. The group (a set
 * of per-lane scale and shift values) of an item is the item itself (instance norm) or its channel block (batch
 * norm). */
#define GROUP(item, blocks, per_image) ((per_image) ? (item) : (item) % (blocks))

/* Block 1: 16 pixels at a time in 16 partial sums. */
INLINE double plane_sum(const float *x, long hw, float shift, int squares) {
    double tot = 0;
    for (long i = 0; i < hw;) {
        long end = i + 1024 < hw ? i + 1024 : hw;
        v16 acc = {0};
        for (; i + 16 <= end; i += 16) { v16 d = load16(x + i) - shift; acc += squares ? d * d : d; }
        float rest = 0;
        for (; i < end; i++) { float d = x[i] - shift; rest += squares ? d * d : d; }
        vd16 a = __builtin_convertvector(acc, vd16);
        for (int l = 0; l < 16; l++) tot += a[l];
        tot += rest;
    }
    return tot;
}

typedef struct { const float *x; long hw; int block; double *mean, *m2; } stats_t;

INLINE void stats_worker_body(void *ctx, long begin, long end) {
    stats_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long off = item * a->hw * a->block;
        if (a->block == 16) stats16(a->x + off, a->hw, a->mean + item * 16, a->m2 + item * 16);
        else if (a->block == 8) stats8(a->x + off, a->hw, a->mean + item * 8, a->m2 + item * 8);
        else {
            double mu = plane_sum(a->x + off, a->hw, 0, 0) / (double)a->hw;
            a->mean[item] = mu;
            a->m2[item] = plane_sum(a->x + off, a->hw, (float)mu, 1);
        }
    }
}
KERNELS(stats_worker)

void mk_norm_stats(const float *x, long items, long hw, int block, double *mean, double *m2) {
    stats_t a = {x, hw, block, mean, m2};
    mk_parallel_for(items, 1, stats_worker, &a);
}

typedef struct { const float *x; float *y; long blocks, hw; int block, per_image, relu; const float *scale, *shift; } apply_t;

INLINE void apply_worker_body(void *ctx, long begin, long end) {
    apply_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long off = item * a->hw * a->block, g = GROUP(item, a->blocks, a->per_image) * a->block;
        const float *x = a->x + off;
        float *y = a->y + off;
        if (a->block == 16) apply16(x, y, a->hw, a->scale + g, a->shift + g, a->relu);
        else if (a->block == 8) apply8(x, y, a->hw, a->scale + g, a->shift + g, a->relu);
        else {
            float sc = a->scale[g], sh = a->shift[g];
            if (a->relu) for (long i = 0; i < a->hw; i++) { float v = x[i] * sc + sh; y[i] = v > 0 ? v : 0; }
            else for (long i = 0; i < a->hw; i++) y[i] = x[i] * sc + sh;
        }
    }
}
KERNELS(apply_worker)

void mk_norm_apply(const float *x, float *y, long n, long blocks, long hw, int block, const float *scale, const float *shift,
                   int per_image, int relu) {
    apply_t a = {x, y, blocks, hw, block, per_image, relu, scale, shift};
    mk_parallel_for(n * blocks, 1, apply_worker, &a);
}

/* Block 1: 16 pixels at a time in 16 partial sums. */
INLINE void bsums_plane(const float *g, const float *x, long hw, float scale, float shift, float mu, int relu, double *sdy, double *sdyx) {
    double t1 = 0, t2 = 0;
    for (long i = 0; i < hw;) {
        long end = i + 1024 < hw ? i + 1024 : hw;
        v16 a1 = {0}, a2 = {0};
        float r1 = 0, r2 = 0;
        for (; i + 16 <= end; i += 16) {
            v16 xv = load16(x + i), d = load16(g + i);
            if (relu) d = select16(xv * scale + shift > 0, d, (v16){0});
            a1 += d;
            a2 += d * (xv - mu);
        }
        for (; i < end; i++) {
            float xv = x[i], d = g[i];
            if (relu && xv * scale + shift <= 0) d = 0;
            r1 += d;
            r2 += d * (xv - mu);
        }
        vd16 d1 = __builtin_convertvector(a1, vd16), d2 = __builtin_convertvector(a2, vd16);
        for (int l = 0; l < 16; l++) { t1 += d1[l]; t2 += d2[l]; }
        t1 += r1; t2 += r2;
    }
    *sdy = t1; *sdyx = t2;
}

typedef struct {
    const float *g, *x; long blocks, hw; int block, per_image, relu;
    const float *scale, *shift, *mean; double *sdy, *sdyx;
} bsums_t;

INLINE void bsums_worker_body(void *ctx, long begin, long end) {
    bsums_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long off = item * a->hw * a->block, gi = GROUP(item, a->blocks, a->per_image) * a->block, o = item * a->block;
        if (a->block == 16)
            bsums16(a->g + off, a->x + off, a->hw, a->scale + gi, a->shift + gi, a->mean + gi, a->relu, a->sdy + o, a->sdyx + o);
        else if (a->block == 8)
            bsums8(a->g + off, a->x + off, a->hw, a->scale + gi, a->shift + gi, a->mean + gi, a->relu, a->sdy + o, a->sdyx + o);
        else
            bsums_plane(a->g + off, a->x + off, a->hw, a->scale[gi], a->shift[gi], a->mean[gi], a->relu, a->sdy + o, a->sdyx + o);
    }
}
KERNELS(bsums_worker)

void mk_norm_backward_sums(const float *g, const float *x, long n, long blocks, long hw, int block, const float *scale, const float *shift,
                           const float *mean, int per_image, int relu, double *sdy, double *sdyx) {
    bsums_t a = {g, x, blocks, hw, block, per_image, relu, scale, shift, mean, sdy, sdyx};
    mk_parallel_for(n * blocks, 1, bsums_worker, &a);
}

typedef struct {
    const float *g, *x; float *dx; long blocks, hw; int block, per_image, relu; float m;
    const float *scale, *shift, *mean, *k, *sdy, *cterm;
} bapply_t;

INLINE void bapply_worker_body(void *ctx, long begin, long end) {
    bapply_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long off = item * a->hw * a->block, gi = GROUP(item, a->blocks, a->per_image) * a->block;
        const float *g = a->g + off, *x = a->x + off;
        float *dx = a->dx + off;
        if (a->block == 16)
            bapply16(g, x, dx, a->hw, a->scale + gi, a->shift + gi, a->mean + gi, a->k + gi, a->sdy + gi, a->cterm + gi, a->m, a->relu);
        else if (a->block == 8)
            bapply8(g, x, dx, a->hw, a->scale + gi, a->shift + gi, a->mean + gi, a->k + gi, a->sdy + gi, a->cterm + gi, a->m, a->relu);
        else {
            float sc = a->scale[gi], sh = a->shift[gi], mu = a->mean[gi], k = a->k[gi], s1 = a->sdy[gi], ct = a->cterm[gi], m = a->m;
            for (long i = 0; i < a->hw; i++) {
                float xv = x[i], d = g[i];
                if (a->relu && xv * sc + sh <= 0) d = 0;
                dx[i] = k * (m * d - s1 - (xv - mu) * ct);
            }
        }
    }
}
KERNELS(bapply_worker)

void mk_norm_backward_apply(const float *g, const float *x, float *dx, long n, long blocks, long hw, int block, const float *scale,
                            const float *shift, const float *mean, const float *k, const float *sdy, const float *cterm, float m,
                            int per_image, int relu) {
    bapply_t a = {g, x, dx, blocks, hw, block, per_image, relu, m, scale, shift, mean, k, sdy, cterm};
    mk_parallel_for(n * blocks, 1, bapply_worker, &a);
}

/* ---- max pooling (k x k window, stride k) of a blocked tensor ---- */

typedef struct { const float *x; float *y; int32_t *arg; long h, w, k; int block; } pool_t;

INLINE void pool_worker_body(void *ctx, long begin, long end) {
    pool_t *a = ctx;
    for (long item = begin; item < end; item++) {
        if (a->block == 16) pool16(a->x, a->y, a->arg, item, a->h, a->w, a->k);
        else pool8(a->x, a->y, a->arg, item, a->h, a->w, a->k);
    }
}
KERNELS(pool_worker)

void mk_maxpool_blocked(const float *x, float *y, int32_t *arg, long items, long h, long w, long k, int block) {
    pool_t a = {x, y, arg, h, w, k, block};
    mk_parallel_for(items, 1, pool_worker, &a);
}

/* ---- pixel shuffle between a 1x1 convolution's s·s·O channels and the upsampled O channels, blocked ----
 * z: [n][kk·ob][h·w][B] (channel q·O + o, q = i·s + j); out: [n][ob][h·s][w·s][B]. Items: (image, block, row). */
typedef struct { const float *src; float *dst; const float *bias; float *partial; long ob, h, w, s; int block; } shuffle_t;

INLINE void d2s_worker_body(void *ctx, long begin, long end) {
    shuffle_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long img = item / (a->ob * a->h), b = (item / a->h) % a->ob, y = item % a->h;
        if (a->block == 16) d2s16(a->src, a->bias, a->dst, img, b, y, a->ob, a->h, a->w, a->s);
        else d2s8(a->src, a->bias, a->dst, img, b, y, a->ob, a->h, a->w, a->s);
    }
}
KERNELS(d2s_worker)

INLINE void s2d_worker_body(void *ctx, long begin, long end) {
    shuffle_t *a = ctx;
    for (long item = begin; item < end; item++) {
        long img = item / (a->ob * a->h), b = (item / a->h) % a->ob, y = item % a->h;
        if (a->block == 16) s2d16(a->src, a->dst, a->partial + item * 16, img, b, y, a->ob, a->h, a->w, a->s);
        else s2d8(a->src, a->dst, a->partial + item * 8, img, b, y, a->ob, a->h, a->w, a->s);
    }
}
KERNELS(s2d_worker)

void mk_depth_to_space(const float *z, const float *bias, float *out, long n, long o, long h, long w, long s, int block) {
    shuffle_t a = {z, out, bias, NULL, o / block, h, w, s, block};
    mk_parallel_for(n * (o / block) * h, 1, d2s_worker, &a);
}

void mk_space_to_depth(const float *g, float *gz, float *partial, long n, long o, long h, long w, long s, int block) {
    shuffle_t a = {g, gz, NULL, partial, o / block, h, w, s, block};
    mk_parallel_for(n * (o / block) * h, 1, s2d_worker, &a);
}

/* ---- element-wise ---- */

typedef struct { const float *x, *g; float *y; } relu_t;

INLINE void relu_worker_body(void *ctx, long begin, long end) {
    relu_t *a = ctx;
    for (long i = begin; i < end; i++) a->y[i] = a->x[i] > 0 ? a->x[i] : 0;
}
KERNELS(relu_worker)

INLINE void relu_backward_worker_body(void *ctx, long begin, long end) {
    relu_t *a = ctx;
    for (long i = begin; i < end; i++) a->y[i] = a->x[i] > 0 ? a->g[i] : 0;
}
KERNELS(relu_backward_worker)

void mk_relu(const float *x, float *y, long count) {
    relu_t a = {x, NULL, y};
    mk_parallel_for(count, 1 << 16, relu_worker, &a);
}

void mk_relu_backward(const float *y, const float *g, float *dx, long count) {
    relu_t a = {y, g, dx};
    mk_parallel_for(count, 1 << 16, relu_backward_worker, &a);
}

/* ---- Adam / AdamW ---- */

typedef struct { float *p; const float *g; float *m, *v; float b1, b2, lr, eps, c1, c2, wd; int decoupled; } adam_t;

INLINE void adam_worker_body(void *ctx, long begin, long end) {
    adam_t *a = ctx;
    float b1 = a->b1, b2 = a->b2, lr = a->lr, eps = a->eps, ic1 = 1 / a->c1, ic2 = 1 / a->c2, wd = a->wd;
    float *p = a->p, *m = a->m, *v = a->v;
    const float *g = a->g;
    if (wd == 0) {
        for (long i = begin; i < end; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
            m[i] = mi; v[i] = vi;
            p[i] -= lr * (mi * ic1) / (sqrtf(vi * ic2) + eps);
        }
        return;
    }
    for (long i = begin; i < end; i++) {
        float gi = g[i];
        if (!a->decoupled) gi += wd * p[i];
        float mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi; v[i] = vi;
        if (a->decoupled) p[i] -= lr * wd * p[i];
        p[i] -= lr * (mi * ic1) / (sqrtf(vi * ic2) + eps);
    }
}
KERNELS(adam_worker)

void mk_adam(float *p, const float *g, float *m, float *v, long count, float b1, float b2, float lr, float eps, float c1, float c2, float wd,
             int decoupled) {
    adam_t a = {p, g, m, v, b1, b2, lr, eps, c1, c2, wd, decoupled};
    mk_parallel_for(count, 1 << 16, adam_worker, &a);
}

/* ---- dot product (16 independent lanes, so the compiler vectorises without reordering the sums' rounding) ---- */

INLINE float dot_body(const float *a, const float *b, long d) {
    float acc[16] = {0};
    long j = 0;
    for (; j + 16 <= d; j += 16) for (int l = 0; l < 16; l++) acc[l] += a[j + l] * b[j + l];
    float s = 0;
    for (int l = 0; l < 16; l++) s += acc[l];
    for (; j < d; j++) s += a[j] * b[j];
    return s;
}

#if defined(__x86_64__)
__attribute__((target("arch=x86-64-v4"))) static float dot_v4(const float *a, const float *b, long d) { return dot_body(a, b, d); }
__attribute__((target("arch=x86-64-v3"))) static float dot_v3(const float *a, const float *b, long d) { return dot_body(a, b, d); }
float mk_dot(const float *a, const float *b, long d) {
    switch (isa_level()) { case 4: return dot_v4(a, b, d); case 3: return dot_v3(a, b, d); default: return dot_body(a, b, d); }
}
#else
float mk_dot(const float *a, const float *b, long d) { return dot_body(a, b, d); }
#endif
