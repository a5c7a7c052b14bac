#include "CNIfTI.h"
#include <nifti/nifti2_io.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <libdeflate.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

/* Uncompressed data: pread straight into the caller's buffer, in two halves on two threads when large (the copy
 * and the page faults of a fresh buffer are what a plain read costs). Returns 0, or -6 on a short read. */
typedef struct { int fd; char *dest; int64_t offset; int64_t n; int ok; } pread_job;

static void *pread_run(void *arg) {
    pread_job *j = (pread_job *)arg;
    int64_t done = 0;
    while (done < j->n) {
        ssize_t r = pread(j->fd, j->dest + done, (size_t)(j->n - done), (off_t)(j->offset + done));
        if (r <= 0) break;
        done += r;
    }
    j->ok = done == j->n;
    return NULL;
}

static int plain_read(const char *path, int64_t offset, void *dest, int64_t nbytes) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -3;
    int64_t half = nbytes >= ((int64_t)8 << 20) ? (nbytes / 2) & ~(int64_t)4095 : nbytes;
    pread_job a = { fd, (char *)dest, offset, half, 0 };
    pread_job b = { fd, (char *)dest + half, offset + half, nbytes - half, 1 };
    pthread_t t;
    int threaded = b.n > 0 && pthread_create(&t, NULL, pread_run, &b) == 0;
    pread_run(&a);
    if (threaded) pthread_join(t, NULL); else if (b.n > 0) pread_run(&b);
    close(fd);
    return (a.ok && b.ok) ? 0 : -6;
}

/* Whole-member gzip decompression with libdeflate (about twice zlib's speed). Returns 0 on success, 1 when the file
 * is not suitable (multi-member, larger than 4 GiB, too short) so the caller falls back to zlib streaming, and
 * -6 when the data is damaged. */
static int deflate_read(const char *path, int64_t offset, void *dest, int64_t nbytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return 1; }
    long size = ftell(f);
    if (size < 18) { fclose(f); return 1; }
    rewind(f);
    unsigned char *in = malloc((size_t)size);
    if (!in) { fclose(f); return 1; }
    size_t got = fread(in, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) { free(in); return 1; }
    uint32_t isize = (uint32_t)in[size - 4] | (uint32_t)in[size - 3] << 8 | (uint32_t)in[size - 2] << 16 | (uint32_t)in[size - 1] << 24;
    int64_t need = offset + nbytes;
    if (need >= ((int64_t)1 << 32) || (int64_t)isize < need) { free(in); return isize < need && need < ((int64_t)1 << 32) ? -6 : 1; }
    unsigned char *out = malloc(isize ? isize : 1);
    if (!out) { free(in); return 1; }
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d) { free(in); free(out); return 1; }
    size_t in_used = 0, out_len = 0;
    enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, in, (size_t)size, out, isize, &in_used, &out_len);
    libdeflate_free_decompressor(d);
    free(in);
    if (r != LIBDEFLATE_SUCCESS) { free(out); return -6; }
    if (in_used != (size_t)size || out_len < (size_t)need) { free(out); return 1; }
    memcpy(dest, out + offset, (size_t)nbytes);
    free(out);
    return 0;
}

static void quiet(void) {
    static int done = 0;
    if (!done) { nifti_set_debug_level(0); done = 1; }
}

static void copy_mat(const nifti_dmat44 *m, double out[16]) {
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) out[r * 4 + c] = m->m[r][c];
}

void *msnifti_open(const char *path, msnifti_header *out) {
    quiet();
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) return NULL;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 8; i++) { out->dim[i] = nim->dim[i]; out->pixdim[i] = nim->pixdim[i]; }
    out->datatype = nim->datatype;
    out->nbyper = nim->nbyper;
    out->scl_slope = nim->scl_slope;
    out->scl_inter = nim->scl_inter;
    out->cal_min = nim->cal_min;
    out->cal_max = nim->cal_max;
    out->qform_code = nim->qform_code;
    out->sform_code = nim->sform_code;
    copy_mat(&nim->qto_xyz, out->qto_xyz);
    copy_mat(&nim->sto_xyz, out->sto_xyz);
    out->quatern_b = nim->quatern_b; out->quatern_c = nim->quatern_c; out->quatern_d = nim->quatern_d;
    out->qoffset_x = nim->qoffset_x; out->qoffset_y = nim->qoffset_y; out->qoffset_z = nim->qoffset_z;
    out->qfac = nim->qfac;
    out->xyz_units = nim->xyz_units;
    out->time_units = nim->time_units;
    out->nifti_type = nim->nifti_type;
    out->intent_code = nim->intent_code;
    out->byteorder = nim->byteorder;
    out->iname_offset = nim->iname_offset;
    out->toffset = nim->toffset;
    memcpy(out->descrip, nim->descrip, 80); out->descrip[80] = 0;
    memcpy(out->intent_name, nim->intent_name, 16); out->intent_name[16] = 0;
    return nim;
}

int msnifti_load_into(void *handle, void *dest, int64_t nbytes) {
    /* Not nifti_image_load: it frees the caller's buffer when a read fails, and nifti_read_buffer replaces NaN and
     * infinite floats by 0, which NiBabel does not. Read the bytes through znzlib at the header's offset instead. */
    nifti_image *nim = (nifti_image *)handle;
    if (!nim || !dest || !nim->iname) return -1;
    if ((int64_t)nim->nvox * nim->nbyper != nbytes) return -2;
    int gz = nifti_is_gzfile(nim->iname);
    if (gz && nim->iname_offset >= 0) {
        int rc = deflate_read(nim->iname, nim->iname_offset, dest, nbytes);
        if (rc == 0) goto swap;
        if (rc < 0) return rc;
    }
    if (!gz && nim->iname_offset >= 0) {
        int rc = plain_read(nim->iname, nim->iname_offset, dest, nbytes);
        if (rc != 0) return rc;
        goto swap;
    }
    znzFile fp = znzopen(nim->iname, "rb", gz);
    if (znz_isnull(fp)) return -3;
#ifdef HAVE_ZLIB
    if (fp->zfptr) gzbuffer(fp->zfptr, 1 << 18);   /* fewer, larger reads than zlib's 8 KiB default */
#endif
    int64_t offset = nim->iname_offset;
    if (offset < 0) {                       /* ANALYZE convention: data at the end of the file */
        int64_t size = nifti_get_filesize(nim->iname);
        if (gz || size < nbytes) { znzclose(fp); return -4; }
        offset = size - nbytes;
    }
    if (znzseek(fp, (long)offset, SEEK_SET) < 0) { znzclose(fp); return -5; }
    int64_t done = 0;
    const int64_t chunk = (int64_t)1 << 30;
    while (done < nbytes) {
        int64_t want = nbytes - done < chunk ? nbytes - done : chunk;
        size_t n = znzread((char *)dest + done, 1, (size_t)want, fp);
        if (n == 0 || n > (size_t)want) break;   /* gzread's -1 arrives as a huge size_t */
        done += (int64_t)n;
    }
    znzclose(fp);
    if (done != nbytes) return -6;
swap:
    if (nim->swapsize > 1 && nim->byteorder != nifti_short_order())
        nifti_swap_Nbytes(nbytes / nim->swapsize, nim->swapsize, dest);
    return 0;
}

void msnifti_close(void *handle) {
    nifti_image *nim = (nifti_image *)handle;
    if (!nim) return;
    nim->data = NULL;
    nifti_image_free(nim);
}

int msnifti_write(const char *path, const msnifti_write_spec *spec, const void *data) {
    quiet();
    nifti_image *nim = nifti_make_new_nim(spec->dim, spec->datatype, 0);
    if (!nim) return -1;
    for (int i = 1; i < 8; i++) nim->pixdim[i] = (float)spec->pixdim[i];
    nim->dx = nim->pixdim[1]; nim->dy = nim->pixdim[2]; nim->dz = nim->pixdim[3];
    nim->dt = nim->pixdim[4]; nim->du = nim->pixdim[5]; nim->dv = nim->pixdim[6]; nim->dw = nim->pixdim[7];

    nifti_dmat44 A;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) A.m[r][c] = spec->affine[r * 4 + c];
    nim->qform_code = spec->qform_code;
    nim->sform_code = spec->sform_code;
    nim->sto_xyz = A;
    nim->sto_ijk = nifti_dmat44_inverse(A);
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(A, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    nim->quatern_b = qb; nim->quatern_c = qc; nim->quatern_d = qd;
    nim->qoffset_x = qx; nim->qoffset_y = qy; nim->qoffset_z = qz;
    nim->qfac = qfac;
    nim->pixdim[0] = qfac;
    nim->qto_xyz = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, spec->pixdim[1], spec->pixdim[2], spec->pixdim[3], qfac);
    nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
    nim->scl_slope = spec->scl_slope;
    nim->scl_inter = spec->scl_inter;
    nim->xyz_units = spec->xyz_units;
    nim->time_units = spec->time_units;
    nim->intent_code = spec->intent_code;
    memcpy(nim->descrip, spec->descrip, 79); nim->descrip[79] = 0;

    int single = 1;
    size_t n = strlen(path);
    if ((n >= 4 && strcmp(path + n - 4, ".hdr") == 0) || (n >= 7 && strcmp(path + n - 7, ".hdr.gz") == 0)) single = 0;
    nim->nifti_type = single ? NIFTI_FTYPE_NIFTI1_1 : NIFTI_FTYPE_NIFTI1_2;
    if (nifti_set_filenames(nim, path, 0, 1) != 0) { nifti_image_free(nim); return -2; }
    /* nifti_set_filenames resets the type from the name (always NIfTI-1): choose the version afterwards. */
    if (spec->nifti_version == 2) nim->nifti_type = single ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI2_2;
    nim->data = (void *)data;
    if (nim->nifti_type == NIFTI_FTYPE_NIFTI2_1) {
        /* libnifti 3.0.1 writes single-file NIfTI-2 as a header-less data file (it treats type 4 as a pair):
         * build the header with libnifti, then write header, empty extension flag and data ourselves. */
        nifti_2_header n2;
        int rc = nifti_convert_nim2n2hdr(nim, &n2);
        nim->data = NULL;
        if (rc != 0) { nifti_image_free(nim); return -3; }
        n2.vox_offset = 544;
        memcpy(n2.magic, "n+2\0\r\n\032\n", 8);
        znzFile f = znzopen(path, "wb", nifti_is_gzfile(path));
        if (znz_isnull(f)) { nifti_image_free(nim); return -4; }
        char ext[4] = {0, 0, 0, 0};
        size_t nbytes = (size_t)nim->nvox * (size_t)nim->nbyper;
        int ok = znzwrite(&n2, 1, sizeof(n2), f) == sizeof(n2) && znzwrite(ext, 1, 4, f) == 4
                 && znzwrite(data, 1, nbytes, f) == nbytes;
        znzclose(f);
        nifti_image_free(nim);
        return ok ? 0 : -5;
    }
    znzFile fp = nifti_image_write_hdr_img(nim, 1, "wb");
    if (fp) znzclose(fp);
    nim->data = NULL;
    nifti_image_free(nim);
    return 0;
}
