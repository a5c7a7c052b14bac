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
    char transfer_syntax[96];
    char modality[16];
    size_t buffer_length;         /* bytes of decoded pixel data */
} cgdcm_info;

/* Reads the header and the decoded pixel data's size. Returns 0 on success, else fills `message`. */
int cgdcm_read_info(const char *path, cgdcm_info *info, char *message, size_t message_size);
/* Decodes the pixel data into `buffer` (at least info.buffer_length bytes), colour as RGB interleaved. */
int cgdcm_read_pixels(const char *path, void *buffer, size_t length, char *message, size_t message_size);

#ifdef __cplusplus
}
#endif
#endif
