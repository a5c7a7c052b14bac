/* CGDCM: the project's only contact with GDCM (Debian's libgdcm-dev), the DICOM library ITK and SimpleITK use. One
 * file in, its pixel data decoded (every transfer syntax GDCM decodes) and the facts MedFormats needs out; errors come
 * back as a status and a message, never as a C++ exception crossing into Swift. */
#ifndef CGDCM_H
#define CGDCM_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t columns, rows, frames;
    int samples_per_pixel;        /* 1 gray, 3 colour */
    int bits_allocated, bits_stored, pixel_representation;  /* 1: signed */
    char photometric[32];         /* as decoded (MONOCHROME1, MONOCHROME2, RGB, ...) */
    int planar_configuration;
    double slope, intercept;      /* 1, 0 when absent */
    int has_rescale;
    double spacing[3];            /* column step, row step, slice step (mm), as GDCM gives them (x, y, z) */
    double origin[3];             /* LPS */
    double direction[6];          /* row and column direction cosines (LPS) */
    int has_patient_geometry;     /* ImagePositionPatient and ImageOrientationPatient present */
    int has_frame_positions;      /* an enhanced multi-frame object's first and last frame positions (LPS) below */
    double first_frame[3], last_frame[3];
    char transfer_syntax[96];
    char modality[16];
    size_t buffer_length;         /* bytes of decoded pixel data */
    size_t max_bytes;             /* in: cgdcm_read_image refuses more decoded bytes than this (0: no limit) */
} cgdcm_info;

/* Reads the header and the decoded pixel data's size. Returns 0 on success, else fills `message`. */
int cgdcm_read_info(const char *path, cgdcm_info *info, char *message, size_t message_size);
/* Reads the header and decodes the pixel data in one pass: *pixels (info.buffer_length bytes, colour as RGB
   interleaved) is allocated here and freed with cgdcm_free. Set info->max_bytes before the call. */
int cgdcm_read_image(const char *path, cgdcm_info *info, void **pixels, char *message, size_t message_size);
void cgdcm_free(void *pixels);

/* The header's values of `count` tags (group << 16 | element) as text, as GDCM's StringFilter gives them (numbers in
   binary VRs printed, multiple values separated by '\\'), without reading the pixel data: value i is written at
   out + offsets[i], zero-terminated and cut to what fits ("" when absent). Returns 0 on success. */
int cgdcm_read_tags(const char *path, const uint32_t *tags, int count, char *out, size_t out_size, size_t *offsets,
                    char *message, size_t message_size);

/* The decoded samples as values, as SimpleITK gives them: stored bits only (sign-extended at bits_stored when signed,
   masked otherwise; one bit per pixel unpacked, first pixel in the lowest bit), MONOCHROME1 inverted within the stored
   range ((2^bits_stored - 1) - v) when `invert`, then v * slope + intercept; colour (interleaved in `raw`) written
   plane after plane. `count` pixels of `samples` samples each. */
void cgdcm_to_float(const void *raw, size_t count, int samples, int bits_allocated, int bits_stored, int is_signed,
                    int invert, double slope, double intercept, float *out);

#ifdef __cplusplus
}
#endif
#endif
