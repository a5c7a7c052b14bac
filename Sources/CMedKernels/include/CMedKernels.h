/* CMedKernels: oneDNN convolution and transposed-convolution primitives for MedTensor (forward, backward data,
 * backward weights). Activations come and go either plain (NCHW) or blocked (nChw16c, channels a multiple of 16: the
 * layout MedTensor keeps between operations); weights are plain (OIHW, or PyTorch's IOHW for transposed convolutions).
 * When oneDNN's chosen layout differs from the caller's, the handle converts. A handle holds the three primitives for
 * one geometry; create once per shape and reuse. Every execution runs under one lock (the handles share a stream). */
#ifndef CMEDKERNELS_H
#define CMEDKERNELS_H
#include <stddef.h>

typedef struct mk_conv mk_conv;

enum { MK_SRC = 0, MK_DST = 1, MK_DIFF_SRC = 2 };

/* Returns NULL on failure (message filled). dilation as in PyTorch (1 = none). transposed: a transposed convolution
 * (input c channels, output o channels, output size (h - 1) * stride - 2 * pad + dilation * (kh - 1) + 1). */
mk_conv *mk_conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                        int transposed, char *message, size_t message_size);
void mk_conv_destroy(mk_conv *conv);
/* 1 when the primitive itself works on that activation (MK_SRC, MK_DST, MK_DIFF_SRC) in nChw16c: a blocked buffer
 * then goes in or out without conversion. */
int mk_conv_blocked(mk_conv *conv, int which);
/* *_blocked: 1 when that buffer is nChw16c, 0 when NCHW. Returns 0 on success. */
int mk_conv_forward(mk_conv *conv, const float *src, int src_blocked, const float *weights, const float *bias, float *dst, int dst_blocked);
/* Both backward passes at once: diff_src (may be NULL: not needed) and diff_weights / diff_bias (diff_weights NULL: not
 * needed). When both want the same layout, diff_dst is converted once. */
int mk_conv_backward(mk_conv *conv, const float *src, int src_blocked, const float *diff_dst, int diff_dst_blocked, const float *weights,
                     float *diff_src, int diff_src_blocked, float *diff_weights, float *diff_bias);

/* Row-major C = alpha op(A) op(B) + beta C through oneDNN's SGEMM (its OpenMP threads sleep between calls under
 * OMP_WAIT_POLICY=passive, unlike OpenBLAS's, which yield-spin). trans_a / trans_b: 'N' or 'T'. Returns 0 on success. */
int mk_sgemm(char trans_a, char trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
             float beta, float *c, long ldc);

#endif
