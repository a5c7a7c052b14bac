#include "CMedKernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* oneDNN convolution handles (see CMedKernels.h). One lock around every execution: the handles own their
 * layout-conversion buffers and share one stream, and a oneDNN stream must not be used from two threads at once. Each
 * primitive already uses every core. */
static pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;
#define LOCKED(body) do { pthread_mutex_lock(&exec_lock); int r_ = (body); pthread_mutex_unlock(&exec_lock); return r_; } while (0)

/* One operand of a primitive. The caller's buffer is plain (NCHW / OIHW / IOHW) or, for activations whose channel
 * count is a multiple of the block, blocked nChw8c or nChw16c (MedTensor keeps activations in the block size oneDNN
 * chooses on the running processor). oneDNN's chosen ("inner") layout is usually that blocked layout: then the buffer
 * is used as it is; otherwise a reorder (created on first use) converts between the caller's layout and an internal
 * buffer. Reorders of activations are counted (mk_activation_reorders), so tests can check that a training step makes
 * none. */
enum { LAY_PLAIN = 0, LAY_B8 = 1, LAY_B16 = 2, LAYS = 3 };
static int lay_of_block(int block) { return block == 16 ? LAY_B16 : block == 8 ? LAY_B8 : LAY_PLAIN; }
static long activation_reorders;     /* atomic */
static _Thread_local long thread_reorders;

typedef struct {
    dnnl_memory_desc_t md[LAYS];     /* the caller's layouts: plain, nChw8c, nChw16c (has[i]) */
    dnnl_memory_desc_t inner_md;
    dnnl_memory_t given[LAYS];       /* bound to the caller's buffer per call */
    dnnl_memory_t inner;             /* internal buffer, created with the first reorder */
    dnnl_primitive_t reorder[LAYS];  /* given[i] -> inner (inputs) or inner -> given[i] (outputs), on first use */
    int same[LAYS], has[LAYS], input, activation;
    unsigned long long stamp;        /* weights: the stamp of the values now in inner (0: none) */
    void *buffer;
    dnnl_engine_t engine;
} io_t;

/* plain: the plain descriptor; b8, b16: the nChw8c and nChw16c descriptors, or NULL where the channels do not fit
 * (weights: both NULL). activation: conversions of this operand are counted. */
static int io_init(io_t *io, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *b8, const dnnl_memory_desc_t *b16,
                   const dnnl_memory_desc_t *inner, int input, int activation, dnnl_engine_t engine) {
    memset(io, 0, sizeof *io);
    io->inner_md = *inner; io->input = input; io->activation = activation; io->engine = engine;
    const dnnl_memory_desc_t *mds[LAYS] = {plain, b8, b16};
    for (int i = 0; i < LAYS; i++) {
        if (!mds[i]) continue;
        io->has[i] = 1; io->md[i] = *mds[i];
        io->same[i] = dnnl_memory_desc_equal(mds[i], inner);
        if (dnnl_memory_create(&io->given[i], mds[i], engine, DNNL_MEMORY_NONE) != dnnl_success) return -1;
    }
    return 0;
}

static int io_reorder(io_t *io, int lay) {
    if (io->reorder[lay]) return 0;
    if (!io->inner) {
        size_t size = dnnl_memory_desc_get_size(&io->inner_md);
        io->buffer = aligned_alloc(64, (size + 63) / 64 * 64);
        if (!io->buffer || dnnl_memory_create(&io->inner, &io->inner_md, io->engine, io->buffer) != dnnl_success) return -1;
    }
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = io->input ? &io->md[lay] : &io->inner_md, *to = io->input ? &io->inner_md : &io->md[lay];
    if (dnnl_reorder_primitive_desc_create(&rpd, from, io->engine, to, io->engine, NULL) != dnnl_success) return -1;
    dnnl_status_t s = dnnl_primitive_create(&io->reorder[lay], rpd);
    dnnl_primitive_desc_destroy(rpd);
    return s == dnnl_success ? 0 : -1;
}

static void io_free(io_t *io) {
    for (int i = 0; i < LAYS; i++) {
        if (io->reorder[i]) dnnl_primitive_destroy(io->reorder[i]);
        if (io->given[i]) dnnl_memory_destroy(io->given[i]);
    }
    if (io->inner) dnnl_memory_destroy(io->inner);
    free(io->buffer);
}

void mk_count_activation_reorder(void) {

    __atomic_fetch_add(&activation_reorders, 1, __ATOMIC_RELAXED);
    thread_reorders++;
}

long mk_activation_reorders(int this_thread) {
    return this_thread ? thread_reorders : __atomic_load_n(&activation_reorders, __ATOMIC_RELAXED);
}

static void io_count(io_t *io) {
    if (io->activation) mk_count_activation_reorder();
}

/* Binds the caller's buffer (layout lay) and, when the primitive wants another layout, converts it into the internal
 * buffer, unless that buffer already holds values with the same non-zero stamp (weights unchanged since the last
 * call). Returns the memory the primitive reads, NULL on failure. */
static dnnl_memory_t io_in_stamped(io_t *io, const void *data, int lay, unsigned long long stamp, dnnl_stream_t stream) {
    if (!io->has[lay]) return NULL;
    dnnl_memory_set_data_handle(io->given[lay], (void *)data);
    if (io->same[lay]) return io->given[lay];
    if (stamp && io->stamp == stamp) return io->inner;
    if (io_reorder(io, lay)) return NULL;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, io->given[lay]}, {DNNL_ARG_TO, io->inner}};
    dnnl_primitive_execute(io->reorder[lay], stream, 2, args);
    io_count(io);
    io->stamp = stamp;
    return io->inner;
}

static dnnl_memory_t io_in(io_t *io, const void *data, int lay, dnnl_stream_t stream) { return io_in_stamped(io, data, lay, 0, stream); }

/* The memory a primitive writes for an output the caller wants in layout lay; io_out_finish converts afterwards. */
static dnnl_memory_t io_out_target(io_t *io, void *data, int lay) {
    if (!io->has[lay]) return NULL;
    dnnl_memory_set_data_handle(io->given[lay], data);
    if (io->same[lay]) return io->given[lay];
    return io_reorder(io, lay) ? NULL : io->inner;
}

static void io_out_finish(io_t *io, int lay, dnnl_stream_t stream) {
    if (io->same[lay]) return;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, io->inner}, {DNNL_ARG_TO, io->given[lay]}};
    dnnl_primitive_execute(io->reorder[lay], stream, 2, args);
    io_count(io);
}

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

static size_t scratch_size(dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static mk_conv *conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                            int transposed, char *message, size_t message_size);

mk_conv *mk_conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                        int transposed, char *message, size_t message_size) {
    pthread_mutex_lock(&exec_lock);
    mk_conv *k = conv_create(n, c, h, w, o, kh, kw, stride, pad, dilation, has_bias, transposed, message, message_size);
    pthread_mutex_unlock(&exec_lock);
    return k;
}

static mk_conv *conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
                            int transposed, char *message, size_t message_size) {
    mk_conv *k = calloc(1, sizeof *k);
    if (!k) { snprintf(message, message_size, "out of memory"); return NULL; }
    if (!shared_engine) {
        if (dnnl_engine_create(&shared_engine, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&shared_stream, shared_engine, dnnl_stream_default_flags) != dnnl_success) {
            snprintf(message, message_size, "oneDNN could not start a CPU engine"); free(k); return NULL;
        }
    }
    k->engine = shared_engine; k->stream = shared_stream; k->has_bias = has_bias;
    if (transposed) {
        k->ho = (h - 1) * stride - 2 * pad + dilation * (kh - 1) + 1;
        k->wo = (w - 1) * stride - 2 * pad + dilation * (kw - 1) + 1;
    } else {
        k->ho = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1;
        k->wo = (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
    }
    dnnl_dims_t sd = {n, c, h, w}, wd = {o, c, kh, kw}, bd = {o}, dd = {n, o, k->ho, k->wo};
    dnnl_dims_t strides = {stride, stride}, dil = {dilation - 1, dilation - 1}, padding = {pad, pad};
    dnnl_memory_desc_t src, wei, bias, dst, src_any, wei_any, dst_any, src_b8, dst_b8, src_b16, dst_b16;
    CHECK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nchw), "descriptor");
    /* PyTorch's transposed-convolution weights are [in, out, kh, kw]: oneDNN's (O, I, kh, kw) stored as iohw. */
    CHECK(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, transposed ? dnnl_iohw : dnnl_oihw), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nchw), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&src_b16, 4, sd, dnnl_f32, dnnl_nChw16c), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst_b16, 4, dd, dnnl_f32, dnnl_nChw16c), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&src_b8, 4, sd, dnnl_f32, dnnl_nChw8c), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst_b8, 4, dd, dnnl_f32, dnnl_nChw8c), "descriptor");
    /* Channels that fill no block (an image's first layer): plain NCHW, which oneDNN's first-layer kernels read
     * directly; "any" would pad the channels to a block and convert the input at every call. */
    CHECK(dnnl_memory_desc_init_by_tag(&src_any, 4, sd, dnnl_f32, c % 8 != 0 && !transposed ? dnnl_nchw : dnnl_format_tag_any), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    const dnnl_memory_desc_t *sb16 = c % 16 == 0 ? &src_b16 : NULL, *db16 = o % 16 == 0 ? &dst_b16 : NULL;
    const dnnl_memory_desc_t *sb8 = c % 8 == 0 ? &src_b8 : NULL, *db8 = o % 8 == 0 ? &dst_b8 : NULL;
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr), "attributes");
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, bdd, bwd;
    /* Layouts left to oneDNN ("any"): it picks the blocked layouts of its direct JIT kernels. */
    if (transposed) {
        CHECK(dnnl_dilated_deconvolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_deconvolution_direct, &src_any, &wei_any,
                                                           has_bias ? &bias : NULL, &dst_any, strides, dil, padding, padding), "forward descriptor");
    } else {
        CHECK(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any,
                                                         has_bias ? &bias : NULL, &dst_any, strides, dil, padding, padding), "forward descriptor");
    }
    CHECK(dnnl_primitive_desc_create(&k->fwd_pd, &fd, attr, k->engine, NULL), "forward primitive descriptor");
    if (transposed) {
        CHECK(dnnl_dilated_deconvolution_backward_data_desc_init(&bdd, dnnl_deconvolution_direct, &src_any, &wei_any, &dst_any, strides, dil,
                                                                 padding, padding), "backward-data descriptor");
    } else {
        CHECK(dnnl_dilated_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any, strides, dil,
                                                               padding, padding), "backward-data descriptor");
    }
    CHECK(dnnl_primitive_desc_create(&k->bwd_data_pd, &bdd, attr, k->engine, k->fwd_pd), "backward-data primitive descriptor");
    if (transposed) {
        CHECK(dnnl_dilated_deconvolution_backward_weights_desc_init(&bwd, dnnl_deconvolution_direct, &src_any, &wei_any, has_bias ? &bias : NULL,
                                                                    &dst_any, strides, dil, padding, padding), "backward-weights descriptor");
    } else {
        CHECK(dnnl_dilated_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src_any, &wei_any, has_bias ? &bias : NULL,
                                                                  &dst_any, strides, dil, padding, padding), "backward-weights descriptor");
    }
    CHECK(dnnl_primitive_desc_create(&k->bwd_wei_pd, &bwd, attr, k->engine, k->fwd_pd), "backward-weights primitive descriptor");
    dnnl_primitive_attr_destroy(attr);
    CHECK(dnnl_primitive_create(&k->fwd, k->fwd_pd), "forward primitive");
    CHECK(dnnl_primitive_create(&k->bwd_data, k->bwd_data_pd), "backward-data primitive");
    CHECK(dnnl_primitive_create(&k->bwd_wei, k->bwd_wei_pd), "backward-weights primitive");
#define MD(pd, q) dnnl_primitive_desc_query_md(pd, q, 0)
    if (io_init(&k->f_src, &src, sb8, sb16, MD(k->fwd_pd, dnnl_query_src_md), 1, 1, k->engine) ||
        io_init(&k->f_wei, &wei, NULL, NULL, MD(k->fwd_pd, dnnl_query_weights_md), 1, 0, k->engine) ||
        io_init(&k->f_dst, &dst, db8, db16, MD(k->fwd_pd, dnnl_query_dst_md), 0, 1, k->engine) ||
        io_init(&k->d_ddst, &dst, db8, db16, MD(k->bwd_data_pd, dnnl_query_diff_dst_md), 1, 1, k->engine) ||
        io_init(&k->d_wei, &wei, NULL, NULL, MD(k->bwd_data_pd, dnnl_query_weights_md), 1, 0, k->engine) ||
        io_init(&k->d_dsrc, &src, sb8, sb16, MD(k->bwd_data_pd, dnnl_query_diff_src_md), 0, 1, k->engine) ||
        io_init(&k->w_src, &src, sb8, sb16, MD(k->bwd_wei_pd, dnnl_query_src_md), 1, 1, k->engine) ||
        io_init(&k->w_ddst, &dst, db8, db16, MD(k->bwd_wei_pd, dnnl_query_diff_dst_md), 1, 1, k->engine) ||
        io_init(&k->w_dwei, &wei, NULL, NULL, MD(k->bwd_wei_pd, dnnl_query_diff_weights_md), 0, 0, k->engine)) {
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

/* The block size of an io's layout when the primitive itself uses nChw8c or nChw16c there, else 0. */
static int io_block(const io_t *io) {
    if (io->has[LAY_B16] && io->same[LAY_B16]) return 16;
    if (io->has[LAY_B8] && io->same[LAY_B8]) return 8;
    return 0;
}

int mk_conv_block(mk_conv *k, int which) {
    switch (which) {
    case MK_SRC: return io_block(&k->f_src);
    case MK_DST: return io_block(&k->f_dst);
    case MK_DIFF_SRC: return io_block(&k->d_dsrc);
    case MK_DIFF_DST_WEIGHTS: return io_block(&k->w_ddst);
    default: return 0;
    }
}

static int run(mk_conv *k, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args) {
    for (int i = 0; i < nargs; i++) if (!args[i].memory) return -1;
    if (k->scratch) { args[nargs].arg = DNNL_ARG_SCRATCHPAD; args[nargs].memory = k->scratch; nargs++; }
    return dnnl_primitive_execute(p, k->stream, nargs, args) == dnnl_success ? 0 : -1;
}

static int conv_forward(mk_conv *k, const float *src, int src_lay, const float *weights, unsigned long long stamp, const float *bias, float *dst,
                        int dst_lay) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, io_in(&k->f_src, src, src_lay, k->stream)},
                               {DNNL_ARG_WEIGHTS, io_in_stamped(&k->f_wei, weights, LAY_PLAIN, stamp, k->stream)},
                               {DNNL_ARG_DST, io_out_target(&k->f_dst, dst, dst_lay)}};
    int n = 3;
    if (k->has_bias) { dnnl_memory_set_data_handle(k->bias, (void *)bias); args[n].arg = DNNL_ARG_BIAS; args[n].memory = k->bias; n++; }
    if (run(k, k->fwd, n, args)) return -1;
    io_out_finish(&k->f_dst, dst_lay, k->stream);
    return dnnl_stream_wait(k->stream) == dnnl_success ? 0 : -1;
}

static int conv_backward(mk_conv *k, const float *src, int src_lay, const float *diff_dst, int ddst_lay, const float *weights,
                         unsigned long long stamp, float *diff_src, int dsrc_lay, float *diff_weights, float *diff_bias) {
    dnnl_memory_t ddst_data = NULL;
    if (diff_src) {
        ddst_data = io_in(&k->d_ddst, diff_dst, ddst_lay, k->stream);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, ddst_data}, {DNNL_ARG_WEIGHTS, io_in_stamped(&k->d_wei, weights, LAY_PLAIN, stamp, k->stream)},
                                   {DNNL_ARG_DIFF_SRC, io_out_target(&k->d_dsrc, diff_src, dsrc_lay)}};
        if (run(k, k->bwd_data, 3, args)) return -1;
        io_out_finish(&k->d_dsrc, dsrc_lay, k->stream);
    }
    if (diff_weights) {
        /* Reuse the converted diff_dst when the backward-weights primitive wants the same layout. */
        dnnl_memory_t ddst_w = (ddst_data && dnnl_memory_desc_equal(&k->d_ddst.inner_md, &k->w_ddst.inner_md)) ? ddst_data
                                                                                                               : io_in(&k->w_ddst, diff_dst, ddst_lay, k->stream);
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, io_in(&k->w_src, src, src_lay, k->stream)}, {DNNL_ARG_DIFF_DST, ddst_w},
                                   {DNNL_ARG_DIFF_WEIGHTS, io_out_target(&k->w_dwei, diff_weights, LAY_PLAIN)}};
        int n = 3;
        if (k->has_bias && diff_bias) { dnnl_memory_set_data_handle(k->bias, diff_bias); args[n].arg = DNNL_ARG_DIFF_BIAS; args[n].memory = k->bias; n++; }
        if (run(k, k->bwd_wei, n, args)) return -1;
        io_out_finish(&k->w_dwei, LAY_PLAIN, k->stream);
    }
    return dnnl_stream_wait(k->stream) == dnnl_success ? 0 : -1;
}

int mk_conv_forward(mk_conv *k, const float *src, int src_block, const float *weights, unsigned long long weights_stamp, const float *bias,
                    float *dst, int dst_block) {
    LOCKED(conv_forward(k, src, lay_of_block(src_block), weights, weights_stamp, bias, dst, lay_of_block(dst_block)));
}
int mk_conv_backward(mk_conv *k, const float *src, int src_block, const float *diff_dst, int diff_dst_block, const float *weights,
                     unsigned long long weights_stamp, float *diff_src, int diff_src_block, float *diff_weights, float *diff_bias) {
    LOCKED(conv_backward(k, src, lay_of_block(src_block), diff_dst, lay_of_block(diff_dst_block), weights, weights_stamp, diff_src,
                         lay_of_block(diff_src_block), diff_weights, diff_bias));
}

/* The channel block of oneDNN's direct convolutions on this processor (16 with AVX-512, 8 with AVX2): the source
 * layout it picks for a 32 -> 32 channel 3 x 3 convolution when left free. 0 when it picks neither. */
int mk_native_block(void) {
    static int cached = -1;
    pthread_mutex_lock(&exec_lock);
    if (cached < 0) {
        char message[128];
        mk_conv *k = conv_create(8, 32, 32, 32, 32, 3, 3, 1, 1, 1, 0, 0, message, sizeof message);
        cached = 0;
        if (k) {
            if (k->f_src.same[LAY_B16]) cached = 16;
            else if (k->f_src.same[LAY_B8]) cached = 8;
            mk_conv_destroy(k);
        }
    }
    int r = cached;
    pthread_mutex_unlock(&exec_lock);
    return r;
}

int mk_sgemm(char trans_a, char trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
             float beta, float *c, long ldc) {
    LOCKED(dnnl_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success ? 0 : -1);
}

const char *mk_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}
