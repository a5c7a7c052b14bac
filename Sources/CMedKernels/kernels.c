#include "CMedKernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mk_conv {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_memory_desc_t src, wei, bias, dst;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_wei_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_wei;
    dnnl_memory_t m_src, m_wei, m_bias, m_dst, m_scratch_f, m_scratch_d, m_scratch_w;
    void *scratch_f, *scratch_d, *scratch_w;
    int has_bias, ho, wo;
};

static dnnl_engine_t shared_engine;
static dnnl_stream_t shared_stream;

#define CHECK(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    snprintf(message, message_size, "oneDNN %s failed (status %d)", what, (int)s_); goto fail; } } while (0)

static int make_scratch(dnnl_primitive_desc_t pd, dnnl_engine_t engine, dnnl_memory_t *mem, void **buf) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t size = md ? dnnl_memory_desc_get_size(md) : 0;
    *buf = size ? aligned_alloc(64, (size + 63) / 64 * 64) : NULL;
    if (size && !*buf) return -1;
    return md && size ? (dnnl_memory_create(mem, md, engine, *buf) == dnnl_success ? 0 : -1) : 0;
}

mk_conv *mk_conv_create(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dilation, int has_bias,
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
    CHECK(dnnl_memory_desc_init_by_tag(&k->src, 4, sd, dnnl_f32, dnnl_nchw), "source descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&k->wei, 4, wd, dnnl_f32, dnnl_oihw), "weights descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&k->bias, 1, bd, dnnl_f32, dnnl_x), "bias descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&k->dst, 4, dd, dnnl_f32, dnnl_nchw), "destination descriptor");
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr), "attributes");
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, bdd, bwd;
    CHECK(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &k->src, &k->wei,
                                                     has_bias ? &k->bias : NULL, &k->dst, strides, dil, padding, padding), "forward descriptor");
    CHECK(dnnl_primitive_desc_create(&k->fwd_pd, &fd, attr, k->engine, NULL), "forward primitive descriptor");
    CHECK(dnnl_dilated_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &k->src, &k->wei, &k->dst, strides, dil, padding, padding),
          "backward-data descriptor");
    CHECK(dnnl_primitive_desc_create(&k->bwd_data_pd, &bdd, attr, k->engine, k->fwd_pd), "backward-data primitive descriptor");
    CHECK(dnnl_dilated_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &k->src, &k->wei, has_bias ? &k->bias : NULL,
                                                              &k->dst, strides, dil, padding, padding), "backward-weights descriptor");
    CHECK(dnnl_primitive_desc_create(&k->bwd_wei_pd, &bwd, attr, k->engine, k->fwd_pd), "backward-weights primitive descriptor");
    dnnl_primitive_attr_destroy(attr);
    CHECK(dnnl_primitive_create(&k->fwd, k->fwd_pd), "forward primitive");
    CHECK(dnnl_primitive_create(&k->bwd_data, k->bwd_data_pd), "backward-data primitive");
    CHECK(dnnl_primitive_create(&k->bwd_wei, k->bwd_wei_pd), "backward-weights primitive");
    CHECK(dnnl_memory_create(&k->m_src, &k->src, k->engine, DNNL_MEMORY_NONE), "memory");
    CHECK(dnnl_memory_create(&k->m_wei, &k->wei, k->engine, DNNL_MEMORY_NONE), "memory");
    CHECK(dnnl_memory_create(&k->m_bias, &k->bias, k->engine, DNNL_MEMORY_NONE), "memory");
    CHECK(dnnl_memory_create(&k->m_dst, &k->dst, k->engine, DNNL_MEMORY_NONE), "memory");
    if (make_scratch(k->fwd_pd, k->engine, &k->m_scratch_f, &k->scratch_f) || make_scratch(k->bwd_data_pd, k->engine, &k->m_scratch_d, &k->scratch_d) ||
        make_scratch(k->bwd_wei_pd, k->engine, &k->m_scratch_w, &k->scratch_w)) {
        snprintf(message, message_size, "oneDNN scratchpad allocation failed"); goto fail;
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
    dnnl_memory_t mems[] = {k->m_src, k->m_wei, k->m_bias, k->m_dst, k->m_scratch_f, k->m_scratch_d, k->m_scratch_w};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(k->scratch_f); free(k->scratch_d); free(k->scratch_w);
    free(k);
}

void mk_conv_out_size(const mk_conv *k, int *ho, int *wo) { *ho = k->ho; *wo = k->wo; }

const char *mk_conv_impl(const mk_conv *k) {
    const char *name = NULL;
    dnnl_primitive_desc_query(k->fwd_pd, dnnl_query_impl_info_str, 0, &name);
    return name ? name : "unknown";
}

static int run(mk_conv *k, dnnl_primitive_t p, dnnl_memory_t scratch, int nargs, dnnl_exec_arg_t *args) {
    if (scratch) { args[nargs].arg = DNNL_ARG_SCRATCHPAD; args[nargs].memory = scratch; nargs++; }
    if (dnnl_primitive_execute(p, k->stream, nargs, args) != dnnl_success) return -1;
    return dnnl_stream_wait(k->stream) == dnnl_success ? 0 : -1;
}

int mk_conv_forward(mk_conv *k, const float *src, const float *weights, const float *bias, float *dst) {
    dnnl_memory_set_data_handle(k->m_src, (void *)src);
    dnnl_memory_set_data_handle(k->m_wei, (void *)weights);
    dnnl_memory_set_data_handle(k->m_dst, dst);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, k->m_src}, {DNNL_ARG_WEIGHTS, k->m_wei}, {DNNL_ARG_DST, k->m_dst}};
    int n = 3;
    if (k->has_bias) { dnnl_memory_set_data_handle(k->m_bias, (void *)bias); args[n].arg = DNNL_ARG_BIAS; args[n].memory = k->m_bias; n++; }
    return run(k, k->fwd, k->m_scratch_f, n, args);
}

int mk_conv_backward_data(mk_conv *k, const float *diff_dst, const float *weights, float *diff_src) {
    dnnl_memory_set_data_handle(k->m_dst, (void *)diff_dst);
    dnnl_memory_set_data_handle(k->m_wei, (void *)weights);
    dnnl_memory_set_data_handle(k->m_src, diff_src);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, k->m_dst}, {DNNL_ARG_WEIGHTS, k->m_wei}, {DNNL_ARG_DIFF_SRC, k->m_src}};
    return run(k, k->bwd_data, k->m_scratch_d, 3, args);
}

int mk_conv_backward_weights(mk_conv *k, const float *src, const float *diff_dst, float *diff_weights, float *diff_bias) {
    dnnl_memory_set_data_handle(k->m_src, (void *)src);
    dnnl_memory_set_data_handle(k->m_dst, (void *)diff_dst);
    dnnl_memory_set_data_handle(k->m_wei, diff_weights);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, k->m_src}, {DNNL_ARG_DIFF_DST, k->m_dst}, {DNNL_ARG_DIFF_WEIGHTS, k->m_wei}};
    int n = 3;
    float dummy_bias_sink = 0; (void)dummy_bias_sink;
    if (k->has_bias && diff_bias) { dnnl_memory_set_data_handle(k->m_bias, diff_bias); args[n].arg = DNNL_ARG_DIFF_BIAS; args[n].memory = k->m_bias; n++; }
    return run(k, k->bwd_wei, k->m_scratch_w, n, args);
}
