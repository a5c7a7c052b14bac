/* CMedKernels: oneDNN convolution primitives for MedTensor (forward, backward data, backward weights); the caller
 * passes plain NCHW / OIHW buffers, the primitives convert to the layouts they choose. A handle holds the three primitives for one geometry; create once per shape and reuse. */
#ifndef CMEDKERNELS_H
#define CMEDKERNELS_H
#include <stddef.h>

typedef struct mk_conv mk_conv;

/* Returns NULL on failure (message filled). dilation as in PyTorch (1 = none). */
mk_conv *mk_conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                        char *message, size_t message_size);
void mk_conv_destroy(mk_conv *conv);
int mk_conv_forward(mk_conv *conv, const float *src, const float *weights, const float *bias, float *dst);
/* Both backward passes at once: diff_src (may be NULL: not needed) and diff_weights / diff_bias (diff_weights NULL: not
 * needed). When both want the same layout, diff_dst is converted once. */
int mk_conv_backward(mk_conv *conv, const float *src, const float *diff_dst, const float *weights, float *diff_src,
                     float *diff_weights, float *diff_bias);

/* Row-major C = alpha op(A) op(B) + beta C through oneDNN's SGEMM (its OpenMP threads sleep between calls under
 * OMP_WAIT_POLICY=passive, unlike OpenBLAS's, which yield-spin). trans_a / trans_b: 'N' or 'T'. Returns 0 on success. */
int mk_sgemm(char trans_a, char trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
             float beta, float *c, long ldc);

#endif
