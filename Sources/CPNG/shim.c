#include "CPNG.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *message;
    size_t message_size;
} err_ctx;

struct mspng_decoder {
    png_structp png;
    png_infop info;
    const uint8_t *bytes;
    size_t size;
    size_t pos;
    err_ctx err;
    int interlace_passes;
    uint32_t height;
};

static void on_error(png_structp png, png_const_charp msg) {
    err_ctx *e = (err_ctx *)png_get_error_ptr(png);
    if (e && e->message && e->message_size) snprintf(e->message, e->message_size, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void read_mem(png_structp png, png_bytep out, png_size_t n) {
    struct mspng_decoder *d = (struct mspng_decoder *)png_get_io_ptr(png);
    if (n > d->size - d->pos) png_error(png, "file is truncated");
    memcpy(out, d->bytes + d->pos, n);
    d->pos += n;
}

mspng_decoder *mspng_open(const uint8_t *bytes, size_t size, int host_order16, mspng_info *info, char *message, size_t message_size) {
    memset(info, 0, sizeof(*info));
    if (message_size) message[0] = 0;
    if (size < 8 || png_sig_cmp(bytes, 0, 8) != 0) {
        snprintf(message, message_size, "not a PNG file (bad signature)");
        return NULL;
    }
    struct mspng_decoder *d = calloc(1, sizeof(*d));
    if (!d) { snprintf(message, message_size, "out of memory"); return NULL; }
    d->bytes = bytes; d->size = size; d->pos = 0;
    d->err.message = message; d->err.message_size = message_size;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->err, on_error, on_warning);
    if (!d->png) { free(d); snprintf(message, message_size, "libpng could not start"); return NULL; }
    d->info = png_create_info_struct(d->png);
    if (!d->info) { png_destroy_read_struct(&d->png, NULL, NULL); free(d);
        snprintf(message, message_size, "libpng could not start"); return NULL; }
    if (setjmp(png_jmpbuf(d->png))) {
        png_destroy_read_struct(&d->png, &d->info, NULL);
        free(d);
        return NULL;
    }
    png_set_read_fn(d->png, d, read_mem);
    /* Our own size limit is applied by the caller before allocating; lift libpng's 1e6 default so it is ours. */
    png_set_user_limits(d->png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(d->png, 64u * 1024u * 1024u);
    /* The CRC of every chunk except IDAT is verified before libpng starts (PNGReader.verifyChunkCRCs, as Pillow
     * does); IDAT's CRC covers compressed bytes whose Adler-32 zlib verifies after decompression, so libpng skips
     * the CRC of critical chunks here rather than checksum the bulk of the file twice. */
    png_set_crc_action(d->png, PNG_CRC_QUIET_USE, PNG_CRC_DEFAULT);
    png_read_info(d->png, d->info);

    png_uint_32 w, h; int bd, ct, il;
    png_get_IHDR(d->png, d->info, &w, &h, &bd, &ct, &il, NULL, NULL);
    info->width = w; info->height = h; info->bit_depth = bd; info->color_type = ct;
    info->interlaced = (il == PNG_INTERLACE_ADAM7);
    d->height = h;

    png_uint_32 rx, ry; int unit;
    if (png_get_pHYs(d->png, d->info, &rx, &ry, &unit)) {
        info->has_phys = 1; info->phys_x = rx; info->phys_y = ry; info->phys_unit = unit;
    }
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal; int n = 0;
        if (png_get_PLTE(d->png, d->info, &pal, &n)) {
            info->palette_size = n;
            for (int i = 0; i < n && i < 256; i++) {
                info->palette[3 * i] = pal[i].red; info->palette[3 * i + 1] = pal[i].green; info->palette[3 * i + 2] = pal[i].blue;
            }
        }
        png_bytep t; int nt = 0; png_color_16p tc;
        if (png_get_tRNS(d->png, d->info, &t, &nt, &tc)) {
            info->trans_size = nt;
            for (int i = 0; i < nt && i < 256; i++) info->trans[i] = t[i];
        }
        png_set_packing(d->png);                 /* one index per byte */
        info->out_channels = 1; info->out_bit_depth = 8; info->out_is_index = 1;
    } else {
        if (png_get_valid(d->png, d->info, PNG_INFO_tRNS)) info->has_trns_color = 1;
        if (bd < 8) png_set_expand_gray_1_2_4_to_8(d->png);   /* bit replication: 1->255, 2-bit x85, 4-bit x17 */
        if (bd == 16 && host_order16) png_set_swap(d->png);  /* host (little-endian) order */
        info->out_bit_depth = bd == 16 ? 16 : 8;
        switch (ct) {
            case PNG_COLOR_TYPE_GRAY: info->out_channels = 1; break;
            case PNG_COLOR_TYPE_GRAY_ALPHA: info->out_channels = 2; break;
            case PNG_COLOR_TYPE_RGB: info->out_channels = 3; break;
            case PNG_COLOR_TYPE_RGB_ALPHA: info->out_channels = 4; break;
            default: snprintf(message, message_size, "unknown PNG colour type %d", ct); png_longjmp(d->png, 1);
        }
    }
    d->interlace_passes = png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);
    return d;
}

int mspng_decode(mspng_decoder *d, uint8_t *pixels, size_t row_bytes, char *message, size_t message_size) {
    d->err.message = message; d->err.message_size = message_size;
    if (message_size) message[0] = 0;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(d->png))) {
        free(rows);
        return -1;
    }
    size_t expected = png_get_rowbytes(d->png, d->info);
    if (expected != row_bytes) {
        snprintf(message, message_size, "row size mismatch (%zu vs %zu)", expected, row_bytes);
        return -2;
    }
    rows = malloc(sizeof(png_bytep) * (d->height ? d->height : 1));
    if (!rows) { snprintf(message, message_size, "out of memory"); return -3; }
    for (uint32_t y = 0; y < d->height; y++) rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(d->png, rows);
    png_read_end(d->png, NULL);
    free(rows);
    return 0;
}

void mspng_close(mspng_decoder *d) {
    if (!d) return;
    png_destroy_read_struct(&d->png, &d->info, NULL);
    free(d);
}

typedef struct {
    uint8_t *data;
    size_t size, cap;
    int failed;
} membuf;

static void write_mem(png_structp png, png_bytep src, png_size_t n) {
    membuf *b = (membuf *)png_get_io_ptr(png);
    if (b->size + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->size + n) cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) png_error(png, "out of memory while encoding");
        b->data = p; b->cap = cap;
    }
    memcpy(b->data + b->size, src, n);
    b->size += n;
}

static void flush_mem(png_structp png) { (void)png; }

int mspng_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int color_type, int bit_depth,
                 uint32_t phys_ppm_x, uint32_t phys_ppm_y, int compression_level,
                 uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    err_ctx err = { message, message_size };
    if (message_size) message[0] = 0;
    *out = NULL; *out_size = 0;
    int channels;
    switch (color_type) {
        case 0: channels = 1; break;
        case 4: channels = 2; break;
        case 2: channels = 3; break;
        case 6: channels = 4; break;
        default: snprintf(message, message_size, "unsupported colour type %d for writing", color_type); return -1;
    }
    if (bit_depth != 8 && bit_depth != 16) { snprintf(message, message_size, "unsupported bit depth %d", bit_depth); return -1; }
    membuf buf = { NULL, 0, 0, 0 };
    png_bytep *volatile rows = NULL;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    if (!png) { snprintf(message, message_size, "libpng could not start"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_write_struct(&png, NULL); snprintf(message, message_size, "libpng could not start"); return -1; }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows); free(buf.data);
        return -1;
    }
    png_set_write_fn(png, &buf, write_mem, flush_mem);
    png_set_compression_level(png, compression_level);
    if (compression_level <= 1) {
        /* Fast mode for bulk writes (phantoms, exports): one cheap filter instead of libpng's adaptive choice among
         * five per row, and zlib's run-length strategy (masks are runs; noisy images barely compress anyway). */
        png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
        png_set_compression_strategy(png, 3 /* Z_RLE */);
    }
    png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (phys_ppm_x > 0 && phys_ppm_y > 0) png_set_pHYs(png, info, phys_ppm_x, phys_ppm_y, PNG_RESOLUTION_METER);
    png_write_info(png, info);
    if (bit_depth == 16) png_set_swap(png);
    size_t row_bytes = (size_t)width * channels * (bit_depth / 8);
    rows = malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = buf.data; *out_size = buf.size;
    return 0;
}

void mspng_free(void *p) { free(p); }
