/* CPNG: the project's only contact with libpng. libpng reports errors with longjmp, which must never cross Swift
 * frames, so every low-level libpng call lives in this file behind its own setjmp, and each entry point returns a
 * status (0 = success) and fills a message. Decoding uses the low-level API: exact samples, no gamma correction. */
#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
#include <stdint.h>
#include <stddef.h>

typedef struct {
    uint32_t width, height;
    int bit_depth;            /* as stored: 1, 2, 4, 8, 16 */
    int color_type;           /* as stored: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA */
    int interlaced;           /* 1 when Adam7 */
    int has_phys;             /* pHYs chunk present */
    uint32_t phys_x, phys_y;  /* pixels per unit */
    int phys_unit;            /* 1 = metre, 0 = unknown (aspect ratio only) */
    int palette_size;         /* number of PLTE entries */
    uint8_t palette[256 * 3];
    int trans_size;           /* tRNS entries for palette images */
    uint8_t trans[256];
    int has_trns_color;       /* tRNS for gray / RGB images (kept as metadata, like Pillow) */
    /* Output layout after the shim's transforms: */
    int out_channels;         /* 1 gray / palette index, 2 gray+alpha, 3 RGB, 4 RGBA */
    int out_bit_depth;        /* 8 or 16 (16-bit samples in host byte order) */
    int out_is_index;         /* 1 when the output holds palette indices (one byte each) */
} mspng_info;

typedef struct mspng_decoder mspng_decoder;

/* Parses the signature and the chunks up to the first IDAT from an in-memory file; sets up the transforms
 * (sub-byte gray scaled to 8 bits by bit replication as Pillow's L mode, palettes left as one index per byte,
 * 16-bit swapped to host order when host_order16 is set, else left big-endian as stored). Returns NULL and a message on failure. */
mspng_decoder *mspng_open(const uint8_t *bytes, size_t size, int host_order16, mspng_info *info, char *message, size_t message_size);
/* Decodes every row (all Adam7 passes) into `pixels`, rows of `row_bytes` = width * out_channels * out_bit_depth/8. */
int mspng_decode(mspng_decoder *decoder, uint8_t *pixels, size_t row_bytes, char *message, size_t message_size);
void mspng_close(mspng_decoder *decoder);

/* Encodes interleaved samples (16-bit in host order) into a PNG held in memory (`*out`, freed with mspng_free).
 * color_type as stored: 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA. phys_ppm_x/y > 0 writes a pHYs chunk in metres. */
int mspng_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int color_type, int bit_depth,
                 uint32_t phys_ppm_x, uint32_t phys_ppm_y, int compression_level,
                 uint8_t **out, size_t *out_size, char *message, size_t message_size);
void mspng_free(void *p);
#endif
