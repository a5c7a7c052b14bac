"""Single DICOM files against SimpleITK (GDCM, as ITK reads them) and pydicom: every file of pydicom's and pydicom-data's
test sets that SimpleITK decodes as an image must give the same values (SimpleITK's: stored bits, MONOCHROME1 inverted,
rescale applied, YBR as RGB) and the same geometry; files SimpleITK refuses must be refused by medselect with one line.
One documented exception: 32-bit samples in explicit VR big endian, which GDCM 3.0.21 (and so SimpleITK) swaps as
16-bit words; medselect puts the halves back and is compared with pydicom there."""
import glob
import os

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from test_formats import sitk_affine_ras

import data_store  # pydicom-data: the larger vendor and codec files

FILES = sorted(glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "**", "*.dcm"), recursive=True)) \
    + sorted(glob.glob(os.path.join(os.path.dirname(data_store.__file__), "data", "*.dcm")))


def as_columns_first(pixels, header):
    """pydicom's [frames,] rows, columns[, samples] as medselect's columns, rows[, frames][, samples], squeezed."""
    colour = header.get("SamplesPerPixel", 1) > 1
    spatial = pixels.ndim - (1 if colour else 0)
    order = list(range(spatial))[::-1] + ([spatial] if colour else [])
    return np.squeeze(np.transpose(pixels, order))


def reference(path):
    try:
        img = sitk.ReadImage(path)
    except RuntimeError:
        return None
    return img


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(f, os.path.dirname(os.path.dirname(f))) for f in FILES])
def test_pydicom_test_file(tmp_path, medselect, path):
    img = reference(path)
    r = medselect.run("convert", path, tmp_path / "x.npy", check=False)
    if img is None:
        assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        return
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / "x.npy")
    ref = sitk.GetArrayFromImage(img)          # z, y, x[, channel]
    ref = np.moveaxis(ref, [0, 1, 2], [2, 1, 0]) if ref.ndim >= 3 else ref.T
    ref = np.squeeze(ref)
    ours = np.squeeze(ours)
    header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    if header.get("BitsAllocated") == 32 and header.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian:
        ref = as_columns_first(pydicom.dcmread(path, force=True).pixel_array, header)
    if header.get("BitsAllocated") == 1:
        # One bit per pixel: SimpleITK (GDCM) scales set bits to 255; medselect keeps them 1, as pydicom does, since
        # such objects are binary segmentations whose label value is 1.
        ref = (ref > 0).astype(ref.dtype)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert np.allclose(ours.astype(np.float64), ref.astype(np.float64), rtol=1e-6, atol=1e-3), os.path.basename(path)
    if img.GetDimension() == 3:
        info = medselect.inspect(path)
        assert np.allclose(info["affine"], sitk_affine_ras(img), atol=1e-4)


@pytest.mark.parametrize("name", ["dicom-jpeg2000-damaged.dcm", "dicom-gdcm-assertion.dcm"])
def test_an_abort_inside_gdcm_ends_with_one_line(medselect, name):
    """Fuzzer-made files that abort inside Debian's GDCM or its codecs: a damaged JPEG 2000 codestream makes OpenJPEG
    2.5.0 corrupt the heap (glibc aborts in free; SimpleITK, with its own OpenJPEG, refuses it), another header trips
    an assertion in GDCM's PixmapReader. medselect must still end with one `error:` line naming the file and status
    1, never a bare abort with no message (the codecs' stderr is redirected meanwhile)."""
    path = os.path.join(os.path.dirname(__file__), "fixtures", name)
    r = medselect.run("inspect", path, check=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], r.stderr
