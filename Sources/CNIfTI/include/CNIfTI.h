/* CNIfTI: the project's only contact with libnifti (nifti2_io, reads NIfTI-1 and NIfTI-2).
 * libnifti keeps global state and is not thread-safe: Swift callers serialise every call.
 * Fields are copied into plain structs of doubles so Swift never touches libnifti's matrix tuples. */
#ifndef CNIFTI_SHIM_H
#define CNIFTI_SHIM_H
#ifndef HAVE_ZLIB
#define HAVE_ZLIB 1
#endif
#include <stdint.h>
#include <stddef.h>

typedef struct {
    int64_t dim[8];          /* dim[0] = rank, dim[1..7] sizes */
    double pixdim[8];        /* pixdim[0] = qfac */
    int datatype;            /* NIfTI DT_* code */
    int nbyper;              /* bytes per voxel */
    double scl_slope, scl_inter;
    double cal_min, cal_max;
    int qform_code, sform_code;
    double qto_xyz[16];      /* row-major, as libnifti computed from the quaternion */
    double sto_xyz[16];      /* row-major srow_x, srow_y, srow_z, 0 0 0 1 */
    double quatern_b, quatern_c, quatern_d, qoffset_x, qoffset_y, qoffset_z, qfac;
    int xyz_units, time_units;
    int nifti_type;          /* 0 ANALYZE, 1 NIfTI-1 single, 2 NIfTI-1 pair, 4 NIfTI-2 single, 5 NIfTI-2 pair */
    int intent_code;
    int byteorder;           /* 1 LSB first, 2 MSB first */
    int64_t iname_offset;
    double toffset;
    char descrip[81];
    char intent_name[17];
} msnifti_header;

/* Reads the header (no data). Returns an opaque handle, or NULL when libnifti refuses the file. */
void *msnifti_open(const char *path, msnifti_header *out);
/* Reads the voxel data into `dest` (exactly nbytes = nvox * nbyper bytes, native byte order). 0 on success. */
int msnifti_load_into(void *handle, void *dest, int64_t nbytes);
void msnifti_close(void *handle);

typedef struct {
    int64_t dim[8];
    double pixdim[8];        /* pixdim[1..7]; pixdim[0] is set from the affine's handedness */
    int datatype;
    double affine[16];       /* row-major voxel -> world (RAS+ mm) */
    int qform_code, sform_code;
    double scl_slope, scl_inter;
    int xyz_units, time_units;
    int nifti_version;       /* 1 or 2 */
    char descrip[80];
    int intent_code;
} msnifti_write_spec;

/* Writes `data` (native byte order) to `path` (.nii, .nii.gz, .hdr, .hdr.gz: libnifti picks the layout from the name).
 * Returns 0 on success, non-zero when libnifti could not create the file. */
int msnifti_write(const char *path, const msnifti_write_spec *spec, const void *data);
#endif
