#include "CMedKernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One lock around every execution: the handles own their layout-conversion buffers and share one stream, and a
 * oneDNN stream must not be used from two threads at once. Each primitive already uses every core. */
static pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;
#define LOCKED(body) do { pthread_mutex_lock(&exec_lock); int r_ = (body); pthread_mutex_unlock(&exec_lock); return r_; } while (0)

/* One operand of a primitive: the caller's plain buffer and, when oneDNN chose another layout (blocked nChw16c and
 * friends for its direct JIT convolutions), an internal buffer with a reorder between the two. */
typedef struct {
    dnnl_memory_t plain, inner;
    dnnl_primitive_t reorder;   /* plain -> inner for inputs, inner -> plain for outputs; NULL when layouts agree */
    void *buffer;
} io_t;

struct mk_conv {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_wei_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_wei;
    io_t f_src, f_wei, f_dst, d_ddst, d_wei, d_dsrc, w_src, w_ddst, w_dwei;
    dnnl_memory_t bias, scratch;
    void *scratch_buf;
    int has_bias, ho, wo;
};

static dnnl_engine_t shared_engine;
static dnnl_stream_t shared_stream;

#define CHECK(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    snprintf(message, message_size, "oneDNN %s failed (status %d)", what, (int)s_); goto fail; } } while (0)

static int io_init(io_t *io, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *inner, int input, dnnl_engine_t engine) {
    memset(io, 0, sizeof *io);
    if (dnnl_memory_create(&io->plain, plain, engine, DNNL_MEMORY_NONE) != dnnl_success) return -1;
    if (dnnl_memory_desc_equal(plain, inner)) return 0;
    size_t size = dnnl_memory_desc_get_size(inner);
    io->buffer = aligned_alloc(64, (size + 63) / 64 * 64);
    if (!io->buffer || dnnl_memory_create(&io->inner, inner, engine, io->buffer) != dnnl_success) return -1;
    dnnl_primitive_desc_t rpd;
    if (dnnl_reorder_primitive_desc_create(&rpd, input ? plain : inner, engine, input ? inner : plain, engine, NULL) != dnnl_success) return -1;
    dnnl_status_t s = dnnl_primitive_create(&io->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    return s == dnnl_success ? 0 : -1;
}

static void io_free(io_t *io) {
    if (io->reorder) dnnl_primitive_destroy(io->reorder);
    if (io->plain) dnnl_memory_destroy(io->plain);
    if (io->inner) dnnl_memory_destroy(io->inner);
    free(io->buffer);
}

/* Binds the caller's buffer; for inputs, reorders it into the inner layout. Returns the memory the primitive uses. */
static dnnl_memory_t io_in(io_t *io, const void *data, dnnl_stream_t stream) {
    dnnl_memory_set_data_handle(io->plain, (void *)data);
    if (!io->reorder) return io->plain;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, io->plain}, {DNNL_ARG_TO, io->inner}};
    dnnl_primitive_execute(io->reorder, stream, 2, args);
    return io->inner;
}

static dnnl_memory_t io_out_target(io_t *io, void *data) {
    dnnl_memory_set_data_handle(io->plain, data);
    return io->reorder ? io->inner : io->plain;
}

static void io_out_finish(io_t *io, dnnl_stream_t stream) {
    if (!io->reorder) return;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, io->inner}, {DNNL_ARG_TO, io->plain}};
    dnnl_primitive_execute(io->reorder, stream, 2, args);
}

static size_t scratch_size(dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static mk_conv *conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                            char *message, size_t message_size);

mk_conv *mk_conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                        char *message, size_t message_size) {
    pthread_mutex_lock(&exec_lock);
    mk_conv *k = conv_create(n, c, h, w, o, kh, kw, stride, pad, dilation, has_bias, message, message_size);
    pthread_mutex_unlock(&exec_lock);
    return k;
}

static mk_conv *conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                            char *message, size_t message_size) {
    mk_conv *k = calloc(1, sizeof *k);
    if (!k) { snprintf(message, message_size, "out of memory"); return NULL; }
    if (!shared_engine) {
        if (dnnl_engine_create(&shared_engine, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&shared_stream, shared_engine, dnnl_stream_default_flags) != dnnl_success) {
            snprintf(message, message_size, "oneDNN could not start a CPU engine"); free(k); return NULL;
        }
    }
    k->engine = shared_engine; k->stream = shared_stream; k->has_bias = has_bias;
    k->ho = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1;
    k->wo = (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
    dnnl_dims_t sd = {n, c, h, w}, wd = {o, c, kh, kw}, bd = {o}, dd = {n, o, k->ho, k->wo};
    dnnl_dims_t strides = {stride, stride}, dil = {dilation - 1, dilation - 1}, padding = {pad, pad};
    dnnl_memory_desc_t src, wei, bias, dst, src_any, wei_any, dst_any;
    CHECK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nchw), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_oihw), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nchw), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&src_any, 4, sd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr), "attributes");
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, bdd, bwd;
    /* Layouts left to oneDNN ("any"): it picks the blocked layouts of its direct JIT kernels. */
    CHECK(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any,
                                                     has_bias ? &bias : NULL, &dst_any, strides, dil, padding, padding), "forward descriptor");
    CHECK(dnnl_primitive_desc_create(&k->fwd_pd, &fd, attr, k->engine, NULL), "forward primitive descriptor");
    CHECK(dnnl_dilated_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any, strides, dil, padding, padding),
          "backward-data descriptor");
    CHECK(dnnl_primitive_desc_create(&k->bwd_data_pd, &bdd, attr, k->engine, k->fwd_pd), "backward-data primitive descriptor");
    CHECK(dnnl_dilated_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src_any, &wei_any, has_bias ? &bias : NULL,
                                                              &dst_any, strides, dil, padding, padding), "backward-weights descriptor");
    CHECK(dnnl_primitive_desc_create(&k->bwd_wei_pd, &bwd, attr, k->engine, k->fwd_pd), "backward-weights primitive descriptor");
    dnnl_primitive_attr_destroy(attr);
    CHECK(dnnl_primitive_create(&k->fwd, k->fwd_pd), "forward primitive");
    CHECK(dnnl_primitive_create(&k->bwd_data, k->bwd_data_pd), "backward-data primitive");
    CHECK(dnnl_primitive_create(&k->bwd_wei, k->bwd_wei_pd), "backward-weights primitive");
#define MD(pd, q) dnnl_primitive_desc_query_md(pd, q, 0)
    if (io_init(&k->f_src, &src, MD(k->fwd_pd, dnnl_query_src_md), 1, k->engine) ||
        io_init(&k->f_wei, &wei, MD(k->fwd_pd, dnnl_query_weights_md), 1, k->engine) ||
        io_init(&k->f_dst, &dst, MD(k->fwd_pd, dnnl_query_dst_md), 0, k->engine) ||
        io_init(&k->d_ddst, &dst, MD(k->bwd_data_pd, dnnl_query_diff_dst_md), 1, k->engine) ||
        io_init(&k->d_wei, &wei, MD(k->bwd_data_pd, dnnl_query_weights_md), 1, k->engine) ||
        io_init(&k->d_dsrc, &src, MD(k->bwd_data_pd, dnnl_query_diff_src_md), 0, k->engine) ||
        io_init(&k->w_src, &src, MD(k->bwd_wei_pd, dnnl_query_src_md), 1, k->engine) ||
        io_init(&k->w_ddst, &dst, MD(k->bwd_wei_pd, dnnl_query_diff_dst_md), 1, k->engine) ||
        io_init(&k->w_dwei, &wei, MD(k->bwd_wei_pd, dnnl_query_diff_weights_md), 0, k->engine)) {
        snprintf(message, message_size, "oneDNN layout conversion setup failed"); goto fail;
    }
#undef MD
    CHECK(dnnl_memory_create(&k->bias, &bias, k->engine, DNNL_MEMORY_NONE), "memory");
    /* One scratchpad, as large as the largest of the three primitives needs. */
    size_t s1 = scratch_size(k->fwd_pd), s2 = scratch_size(k->bwd_data_pd), s3 = scratch_size(k->bwd_wei_pd);
    size_t smax = s1 > s2 ? (s1 > s3 ? s1 : s3) : (s2 > s3 ? s2 : s3);
    if (smax) {
        k->scratch_buf = aligned_alloc(64, (smax + 63) / 64 * 64);
        dnnl_dims_t sdims = {(dnnl_dim_t)smax};
        dnnl_memory_desc_t smd;
        dnnl_memory_desc_init_by_tag(&smd, 1, sdims, dnnl_u8, dnnl_x);
        if (!k->scratch_buf || dnnl_memory_create(&k->scratch, &smd, k->engine, k->scratch_buf) != dnnl_success) {
            snprintf(message, message_size, "oneDNN scratchpad allocation failed"); goto fail;
        }
    }
    return k;
fail:
    mk_conv_destroy(k);
    return NULL;
}

void mk_conv_destroy(mk_conv *k) {
    if (!k) return;
    if (k->fwd) dnnl_primitive_destroy(k->fwd);
    if (k->bwd_data) dnnl_primitive_destroy(k->bwd_data);
    if (k->bwd_wei) dnnl_primitive_destroy(k->bwd_wei);
    if (k->fwd_pd) dnnl_primitive_desc_destroy(k->fwd_pd);
    if (k->bwd_data_pd) dnnl_primitive_desc_destroy(k->bwd_data_pd);
    if (k->bwd_wei_pd) dnnl_primitive_desc_destroy(k->bwd_wei_pd);
    io_t *ios[] = {&k->f_src, &k->f_wei, &k->f_dst, &k->d_ddst, &k->d_wei, &k->d_dsrc, &k->w_src, &k->w_ddst, &k->w_dwei};
    for (size_t i = 0; i < sizeof ios / sizeof ios[0]; i++) io_free(ios[i]);
    if (k->bias) dnnl_memory_destroy(k->bias);
    if (k->scratch) dnnl_memory_destroy(k->scratch);
    free(k->scratch_buf);
    free(k);
}

static int run(mk_conv *k, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args) {
    if (k->scratch) { args[nargs].arg = DNNL_ARG_SCRATCHPAD; args[nargs].memory = k->scratch; nargs++; }
    return dnnl_primitive_execute(p, k->stream, nargs, args) == dnnl_success ? 0 : -1;
}

static int conv_forward(mk_conv *k, const float *src, const float *weights, const float *bias, float *dst) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, io_in(&k->f_src, src, k->stream)}, {DNNL_ARG_WEIGHTS, io_in(&k->f_wei, weights, k->stream)},
                               {DNNL_ARG_DST, io_out_target(&k->f_dst, dst)}};
    int n = 3;
    if (k->has_bias) { dnnl_memory_set_data_handle(k->bias, (void *)bias); args[n].arg = DNNL_ARG_BIAS; args[n].memory = k->bias; n++; }
    if (run(k, k->fwd, n, args)) return -1;
    io_out_finish(&k->f_dst, k->stream);
    return dnnl_stream_wait(k->stream) == dnnl_success ? 0 : -1;
}

static int conv_backward(mk_conv *k, const float *src, const float *diff_dst, const float *weights, float *diff_src,
                         float *diff_weights, float *diff_bias) {
    dnnl_memory_t ddst_data = NULL;
    if (diff_src) {
        ddst_data = io_in(&k->d_ddst, diff_dst, k->stream);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, ddst_data}, {DNNL_ARG_WEIGHTS, io_in(&k->d_wei, weights, k->stream)},
                                   {DNNL_ARG_DIFF_SRC, io_out_target(&k->d_dsrc, diff_src)}};
        if (run(k, k->bwd_data, 3, args)) return -1;
        io_out_finish(&k->d_dsrc, k->stream);
    }
    if (diff_weights) {
        /* Reuse the converted diff_dst when the backward-weights primitive wants the same layout. */
        const dnnl_memory_desc_t *a = NULL, *b = NULL;
        dnnl_memory_get_memory_desc(k->d_ddst.reorder ? k->d_ddst.inner : k->d_ddst.plain, &a);
        dnnl_memory_get_memory_desc(k->w_ddst.reorder ? k->w_ddst.inner : k->w_ddst.plain, &b);
        dnnl_memory_t ddst_w = (ddst_data && a && b && dnnl_memory_desc_equal(a, b)) ? ddst_data : io_in(&k->w_ddst, diff_dst, k->stream);
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, io_in(&k->w_src, src, k->stream)}, {DNNL_ARG_DIFF_DST, ddst_w},
                                   {DNNL_ARG_DIFF_WEIGHTS, io_out_target(&k->w_dwei, diff_weights)}};
        int n = 3;
        if (k->has_bias && diff_bias) { dnnl_memory_set_data_handle(k->bias, diff_bias); args[n].arg = DNNL_ARG_DIFF_BIAS; args[n].memory = k->bias; n++; }
        if (run(k, k->bwd_wei, n, args)) return -1;
        io_out_finish(&k->w_dwei, k->stream);
    }
    return dnnl_stream_wait(k->stream) == dnnl_success ? 0 : -1;
}

int mk_conv_forward(mk_conv *k, const float *src, const float *weights, const float *bias, float *dst) {
    LOCKED(conv_forward(k, src, weights, bias, dst));
}
int mk_conv_backward(mk_conv *k, const float *src, const float *diff_dst, const float *weights, float *diff_src,
                     float *diff_weights, float *diff_bias) {
    LOCKED(conv_backward(k, src, diff_dst, weights, diff_src, diff_weights, diff_bias));
}

int mk_sgemm(char trans_a, char trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
             float beta, float *c, long ldc) {
    LOCKED(dnnl_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success ? 0 : -1);
}
