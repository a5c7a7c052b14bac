/* CMedKernels: the C core under MedCompute and MedTensor.
 *
 * kernels.c — oneDNN convolution and transposed-convolution primitives (forward, backward data, backward weights).
 * Activations come and go plain (NCHW) or blocked (nChw8c / nChw16c, channels a multiple of the block: the layout
 * MedTensor keeps between operations, with the block oneDNN picks on the running processor); weights are plain (OIHW,
 * or PyTorch's IOHW for transposed convolutions). When oneDNN's chosen layout differs from the caller's, the handle
 * converts (and counts the conversion). A handle holds the three primitives for one geometry; create once per shape
 * and reuse. Every execution runs under one lock (the handles share a stream). Also oneDNN's SGEMM.
 *
 * blocked.c — hand-written kernels (layout conversion, normalisation, pooling, pixel shuffle, ReLU, Adam, dot
 * product), each compiled for AVX-512, AVX2 and the baseline and chosen once at run time (capped by
 * ONEDNN_MAX_CPU_ISA, like oneDNN), and the parallel loop on oneDNN's OpenMP threads. Block sizes ("block") are 8 or
 * 16. */
#ifndef CMEDKERNELS_H
#define CMEDKERNELS_H
#include <stddef.h>
#include <stdint.h>

typedef struct mk_conv mk_conv;

/* Activations of a handle: the source, the destination, the source gradient, and the destination gradient as the
 * backward-weights primitive reads it. */
enum { MK_SRC = 0, MK_DST = 1, MK_DIFF_SRC = 2, MK_DIFF_DST_WEIGHTS = 3 };

/* Returns NULL on failure (message filled). dilation as in PyTorch (1 = none). transposed: a transposed convolution
 * (input c channels, output o channels, output size (h - 1) * stride - 2 * pad + dilation * (kh - 1) + 1). */
mk_conv *mk_conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                        int transposed, char *message, size_t message_size);
void mk_conv_destroy(mk_conv *conv);
/* The block (8 or 16) when the primitive itself works on that activation (MK_SRC, MK_DST, MK_DIFF_SRC,
 * MK_DIFF_DST_WEIGHTS) in nChw8c or nChw16c: a buffer in that layout then goes in or out without conversion. 0 otherwise. */
int mk_conv_block(mk_conv *conv, int which);
/* *_block: the buffer's layout, 0 (NCHW), 8 (nChw8c) or 16 (nChw16c). weights_stamp: a number that changes whenever
 * the weights' values do (0: unknown); while it stays the same, the handle reuses its converted copy of the weights.
 * Returns 0 on success. */
int mk_conv_forward(mk_conv *conv, const float *src, int src_block, const float *weights, unsigned long long weights_stamp, const float *bias,
                    float *dst, int dst_block);
/* Both backward passes at once: diff_src (may be NULL: not needed) and diff_weights / diff_bias (diff_weights NULL: not
 * needed). When both want the same layout, diff_dst is converted once. */
int mk_conv_backward(mk_conv *conv, const float *src, int src_block, const float *diff_dst, int diff_dst_block, const float *weights,
                     unsigned long long weights_stamp, float *diff_src, int diff_src_block, float *diff_weights, float *diff_bias);
/* The channel block oneDNN's convolutions use on this processor: 16 (AVX-512), 8 (AVX2), 0 (neither). Decided once. */
int mk_native_block(void);
/* The instruction set oneDNN's kernels use here ("avx512_core", "avx2", ...; ONEDNN_MAX_CPU_ISA caps it). */
const char *mk_isa_name(void);
/* How many activation conversions (oneDNN's reorders of a source, destination or their gradients, and
 * mk_convert_layout's) have run since the process started (this_thread: those the calling thread asked for). Weights
 * are not counted. */
long mk_activation_reorders(int this_thread);
void mk_count_activation_reorder(void);

/* Row-major C = alpha op(A) op(B) + beta C through oneDNN's SGEMM. trans_a / trans_b: 'N' or 'T'. 0 on success. */
int mk_sgemm(char trans_a, char trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
             float beta, float *c, long ldc);

/* The level the hand-written kernels run at: "avx512", "avx2" or "baseline". */
const char *mk_kernel_isa(void);

/* fn(ctx, begin, end) over [0, count) in chunks of `chunk` items, on the OpenMP threads oneDNN uses (one pool for
 * both: no second set of threads competing for the cores). Serial inside a parallel region or for one chunk. */
void mk_parallel_for(long count, long chunk, void (*fn)(void *ctx, long begin, long end), void *ctx);
/* The number of threads the loop and oneDNN use; setting it applies to the calling thread's later loops. */
int mk_threads(void);
void mk_set_threads(int n);

/* Plain NCHW <-> blocked, c a multiple of block, hw = h * w. */
void mk_convert_layout(const float *src, float *dst, long n, long c, long hw, int block, int to_blocked);

/* Normalisation of a blocked tensor (items = n * blocks, each hw * block values). Statistics per item (double). */
void mk_norm_stats(const float *x, long items, long hw, int block, double *mean, double *m2);
/* y = relu?(x * scale + shift) with per-group lane vectors (group: the item when per_image, else its channel block). */
void mk_norm_apply(const float *x, float *y, long n, long blocks, long hw, int block, const float *scale, const float *shift,
                   int per_image, int relu);
/* Per item Σ dy and Σ dy (x − mean), dy zeroed where the forward ReLU cut. */
void mk_norm_backward_sums(const float *g, const float *x, long n, long blocks, long hw, int block, const float *scale, const float *shift,
                           const float *mean, int per_image, int relu, double *sdy, double *sdyx);
/* dx = k (m dy − sdy − (x − mean) cterm), per-group lane vectors. */
void mk_norm_backward_apply(const float *g, const float *x, float *dx, long n, long blocks, long hw, int block, const float *scale,
                            const float *shift, const float *mean, const float *k, const float *sdy, const float *cterm, float m,
                            int per_image, int relu);

/* Max pooling k x k, stride k, of a blocked tensor (items = n * blocks planes of h x w); arg: storage index of each
 * output's maximum (the first one of a window). */
void mk_maxpool_blocked(const float *x, float *y, int32_t *arg, long items, long h, long w, long k, int block);

/* Pixel shuffle (depth to space) of a 1 x 1 convolution's s·s·o blocked channels to o blocked channels at s times the
 * size, plus bias; and its adjoint (space to depth), with per-(image, block, row) partial sums for the bias gradient
 * (partial: n * (o / block) * h * block floats). */
void mk_depth_to_space(const float *z, const float *bias, float *out, long n, long o, long h, long w, long s, int block);
void mk_space_to_depth(const float *g, float *gz, float *partial, long n, long o, long h, long w, long s, int block);

/* y = max(x, 0); dx = g where y > 0. */
void mk_relu(const float *x, float *y, long count);
void mk_relu_backward(const float *y, const float *g, float *dx, long count);

/* Σ a[i] b[i] over d values. */
float mk_dot(const float *a, const float *b, long d);

/* One Adam step over count parameters (c1, c2: the bias corrections 1 − β^t); wd with decoupled = AdamW. */
void mk_adam(float *p, const float *g, float *m, float *v, long count, float b1, float b2, float lr, float eps, float c1, float c2, float wd,
             int decoupled);

/* ---- transformer layers (transformer.c) ---- */

/* LayerNorm over rows of d values; mean and rstd (1 / sqrt(var + eps)) per row are kept for the backward pass, which
 * writes dx and adds into dgamma and dbeta. */
void mk_layernorm(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *rstd, long rows, long d, float eps);
void mk_layernorm_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *rstd, float *dx,
                           float *dgamma, float *dbeta, long rows, long d);

/* Exact GELU (erf) and its gradient dx = g * GELU'(x). */
void mk_gelu(const float *x, float *y, long count);
void mk_gelu_backward(const float *x, const float *g, float *dx, long count);

/* out = a + b (count floats); y[r][j] += bias[j]; out[j] = sum over rows of v[r][j]. */
void mk_add(const float *a, const float *b, float *out, long count);
void mk_add_bias(float *y, const float *bias, long rows, long d);
void mk_column_sums(const float *v, float *out, long rows, long d);

/* Multi-head attention softmax(Q K^T * scale) V from qkv [batch][tokens][3][heads][dh] into out [batch][tokens][heads][dh],
 * keeping the probabilities [batch][heads][tokens][tokens]; the backward pass writes (overwrites) dqkv. */
void mk_attention(const float *qkv, float *out, float *probs, long batch, long tokens, long heads, long dh, float scale);
void mk_attention_backward(const float *qkv, const float *probs, const float *dout, float *dqkv, long batch, long tokens, long heads, long dh,
                           float scale);

#endif
