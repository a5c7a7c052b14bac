"""Cross-checks of medselect's readers and writers against the reference Python libraries.

Files are written by NiBabel, Pillow, pypng, OpenCV and SimpleITK; `medselect convert X out.npy` must give the
reference library's array (exactly for integers, 1e-6 relative for floats) and `medselect inspect --json` the same
affine and zooms (1e-5). Files written by medselect must read back identically in those libraries.
"""
import itertools
import os

import cv2
import nibabel as nib
import numpy as np
import png as pypng
import pytest
import SimpleITK as sitk
from PIL import Image

RNG = np.random.default_rng(0)
SHAPE = (7, 6, 5)
AFFINES = {
    "oblique": np.array([[0.0, -0.8, 0.1, 10.0], [0.9, 0.0, 0.0, -20.0], [0.0, 0.05, 2.5, 5.0], [0, 0, 0, 1]]),
    "rigid": np.array([[0.8660254, -0.5, 0.0, 10.0], [0.5, 0.8660254, 0.0, -20.0], [0.0, 0.0, 1.0, 5.0], [0, 0, 0, 1]])
    @ np.diag([0.7, 0.8, 2.5, 1.0]),
    "lps": np.diag([-0.7, -0.7, 3.0, 1.0]) + np.array([[0, 0, 0, 90], [0, 0, 0, 100], [0, 0, 0, -40], [0, 0, 0, 0]]),
}
DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64]


def values(dtype, shape=SHAPE):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -30000), min(info.max, 60000)
        return RNG.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    return (RNG.normal(0, 500, size=shape)).astype(dtype)


def assert_same(ours, ref):
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    if np.issubdtype(ref.dtype, np.integer) and np.issubdtype(ours.dtype, np.integer):
        assert np.array_equal(ours, ref)
    else:
        ref = ref.astype(np.float64)
        ok = np.isclose(ours.astype(np.float64), ref, rtol=1e-6, atol=0, equal_nan=True)
        assert ok.all(), f"max abs diff {np.nanmax(np.abs(ours - ref))}"


NIFTI_CASES = list(itertools.product(DTYPES, [".nii", ".nii.gz", ".hdr"], [1, 2]))


@pytest.mark.parametrize("dtype,ext,version", NIFTI_CASES, ids=[f"{np.dtype(d).name}{e}-v{v}" for d, e, v in NIFTI_CASES])
def test_nifti_read_matches_nibabel(tmp_path, medselect, dtype, ext, version):
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    if ext == ".hdr":
        cls = nib.Nifti1Pair if version == 1 else nib.Nifti2Pair
    img = cls(values(dtype), AFFINES["oblique"], dtype=dtype)
    p = tmp_path / f"a{ext}"
    nib.save(img, p)
    ref = nib.load(p)
    assert_same(medselect.to_npy(p, tmp_path / "a.npy"), ref.get_fdata())
    info = medselect.inspect(p)
    assert np.allclose(info["affine"], ref.affine, atol=1e-5)
    assert np.allclose(info["zooms"], ref.header.get_zooms(), atol=1e-5)
    assert info["shape"] == list(ref.shape)
    assert info["orientation"] == "".join(nib.aff2axcodes(ref.affine))


@pytest.mark.parametrize("case", ["scaled", "bigendian", "qform_only", "no_xform", "4d", "2d", "nan", "rgb24"])
def test_nifti_special_cases(tmp_path, medselect, case):
    data = values(np.int16)
    aff = AFFINES["lps"]
    p = tmp_path / "s.nii.gz"
    if case == "scaled":
        img = nib.Nifti1Image(data, aff)
        img.header.set_slope_inter(0.37, -12.5)
    elif case == "bigendian":
        hdr = nib.Nifti1Header(endianness=">")
        img = nib.Nifti1Image(data.astype(">f4"), aff, header=hdr)
    elif case == "qform_only":
        img = nib.Nifti1Image(data, None)
        img.set_qform(AFFINES["oblique"], code=1)
        img.set_sform(None, code=0)
    elif case == "no_xform":
        img = nib.Nifti1Image(data, None)
        img.header.set_zooms((0.5, 0.6, 2.0))
        img.set_qform(None, code=0)
        img.set_sform(None, code=0)
    elif case == "4d":
        img = nib.Nifti1Image(values(np.float32, SHAPE + (3,)), aff)
    elif case == "2d":
        img = nib.Nifti1Image(values(np.uint8, (9, 4)), aff)
    elif case == "nan":
        d = values(np.float32)
        d[0, 0, 0] = np.nan
        d[1, 2, 3] = np.inf
        img = nib.Nifti1Image(d, aff)
    elif case == "rgb24":
        rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        for i, c in enumerate("RGB"):
            rgb[c] = values(np.uint8) // (i + 1)
        img = nib.Nifti1Image(rgb, aff)
    nib.save(img, p)
    ref = nib.load(p)
    ours = medselect.to_npy(p, tmp_path / "s.npy")
    if case == "rgb24":
        arr = np.asanyarray(ref.dataobj)
        expected = np.stack([arr["R"], arr["G"], arr["B"]], axis=-1)
        assert_same(ours, expected)
    else:
        assert_same(ours, ref.get_fdata())
    info = medselect.inspect(p)
    assert np.allclose(info["affine"], ref.affine, atol=1e-5), (info["affine"], ref.affine)


@pytest.mark.parametrize("ext,dtype", [(".nii.gz", "float32"), (".nii", "int16"), (".nii.gz", "uint8"), (".hdr", "float32")])
def test_nifti_written_by_medselect_reads_back_in_nibabel_and_itk(tmp_path, medselect, ext, dtype):
    src = nib.Nifti1Image(np.abs(values(np.int16)) // 200, AFFINES["rigid"])
    s = tmp_path / "src.nii"
    nib.save(src, s)
    out = tmp_path / f"out{ext}"
    medselect.run("convert", s, out, "--type", dtype)
    back = nib.load(out)
    assert np.allclose(back.affine, src.affine, atol=1e-5)
    assert back.header.get_data_dtype() == np.dtype(dtype)
    assert np.array_equal(back.get_fdata(), src.get_fdata())
    assert back.header["qform_code"] > 0 and back.header["sform_code"] > 0
    # qform and sform agree (ITK and FSL prefer the qform for rigid frames)
    assert np.allclose(back.get_qform(), back.get_sform(), atol=1e-4)
    if ext != ".hdr":
        itk = sitk.ReadImage(str(out))
        direction = np.array(itk.GetDirection()).reshape(3, 3)
        lps = np.diag([-1, -1, 1])
        ras_cols = lps @ direction @ np.diag(itk.GetSpacing())
        assert np.allclose(ras_cols, src.affine[:3, :3], atol=1e-4)
        assert np.allclose(lps @ np.array(itk.GetOrigin()), src.affine[:3, 3], atol=1e-4)


PIL_CASES = ["L", "I;16", "RGB", "RGBA", "LA", "P", "P_trns", "P_gray", "1"]


@pytest.mark.parametrize("mode", PIL_CASES)
def test_png_from_pillow(tmp_path, medselect, mode):
    h, w = 37, 53
    p = tmp_path / f"{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(RNG.integers(0, 65535, (h, w), endpoint=True).astype(np.uint16)).save(p)
    elif mode in ("P", "P_trns", "P_gray"):
        idx = RNG.integers(0, 40, (h, w)).astype(np.uint8)
        im = Image.fromarray(idx, mode="P")
        pal = RNG.integers(0, 256, 40 * 3).astype(np.uint8)
        if mode == "P_gray":
            g = RNG.integers(0, 256, 40).astype(np.uint8)
            pal = np.repeat(g, 3)
        im.putpalette(pal.tolist())
        if mode == "P_trns":
            im.info["transparency"] = bytes(RNG.integers(0, 256, 40).astype(np.uint8))
            im.save(p, transparency=im.info["transparency"])
        else:
            im.save(p)
    elif mode == "1":
        Image.fromarray(RNG.integers(0, 2, (h, w)).astype(bool)).save(p)
    else:
        ch = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
        arr = RNG.integers(0, 256, (h, w, ch) if ch > 1 else (h, w)).astype(np.uint8)
        Image.fromarray(arr, mode=mode).save(p)
    with Image.open(p) as im:
        if im.mode == "P":
            target = "RGBA" if "transparency" in im.info else ("L" if mode == "P_gray" else "RGB")
            ref = np.asarray(im.convert(target))
        elif im.mode == "1":
            ref = np.asarray(im.convert("L"))
        else:
            ref = np.asarray(im)
    ours = medselect.to_npy(p, tmp_path / "o.npy")
    assert ours.dtype == (np.uint16 if mode == "I;16" else np.uint8)
    assert_same(ours, ref.astype(ours.dtype))


@pytest.mark.parametrize("bitdepth,greyscale,alpha,interlace", [
    (1, True, False, False), (2, True, False, True), (4, True, False, False), (8, True, True, True),
    (16, True, True, False), (16, False, False, True), (16, False, True, False), (8, False, False, True),
])
def test_png_from_pypng(tmp_path, medselect, bitdepth, greyscale, alpha, interlace):
    h, w = 19, 23
    ch = (1 if greyscale else 3) + (1 if alpha else 0)
    arr = RNG.integers(0, 2 ** bitdepth, (h, w * ch)).astype(np.uint16)
    p = tmp_path / "p.png"
    with open(p, "wb") as f:
        pypng.Writer(w, h, greyscale=greyscale, alpha=alpha, bitdepth=bitdepth, interlace=interlace).write(f, arr.tolist())
    ours = medselect.to_npy(p, tmp_path / "p.npy")
    expected = arr.reshape(h, w, ch) if ch > 1 else arr
    if bitdepth < 8:
        expected = expected * (255 // (2 ** bitdepth - 1))
    assert_same(ours, expected.astype(ours.dtype))
    if bitdepth == 16 and not greyscale:
        cv = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv = cv[..., [2, 1, 0, 3]] if alpha else cv[..., ::-1]
        assert_same(ours, cv)
    if bitdepth <= 8 and greyscale and not alpha:
        with Image.open(p) as im:
            assert_same(ours, np.asarray(im.convert("L")))


def test_png_written_by_medselect_reads_back_in_pillow(tmp_path, medselect):
    g16 = RNG.integers(0, 4096, (31, 17)).astype(np.uint16)
    src = tmp_path / "g16.png"
    Image.fromarray(g16).save(src)
    medselect.run("convert", src, tmp_path / "g16.nii.gz")
    medselect.run("convert", tmp_path / "g16.nii.gz", tmp_path / "back.png")
    with Image.open(tmp_path / "back.png") as im:
        assert np.array_equal(np.asarray(im), g16)
    rgb = RNG.integers(0, 256, (11, 13, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    medselect.run("convert", tmp_path / "rgb.png", tmp_path / "rgb.mha")
    medselect.run("convert", tmp_path / "rgb.mha", tmp_path / "rgb2.png")
    with Image.open(tmp_path / "rgb2.png") as im:
        assert np.array_equal(np.asarray(im), rgb)


def sitk_affine_ras(img):
    d = np.array(img.GetDirection()).reshape(img.GetDimension(), img.GetDimension())[:3, :3]
    lps = np.diag([-1.0, -1.0, 1.0])
    aff = np.eye(4)
    aff[:3, :3] = lps @ d @ np.diag(img.GetSpacing()[:3])
    aff[:3, 3] = lps @ np.array(img.GetOrigin()[:3])
    return aff


@pytest.mark.parametrize("ext,compress,dtype", [
    (".mha", False, np.int16), (".mha", True, np.float32), (".mhd", False, np.uint8), (".mhd", True, np.int32),
    (".mha", False, np.float64), (".mhd", False, np.uint16),
])
def test_metaimage_from_simpleitk(tmp_path, medselect, ext, compress, dtype):
    arr = values(dtype)                              # x, y, z
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))  # SimpleITK arrays are z, y, x
    img.SetSpacing((0.6, 0.7, 3.0))
    img.SetOrigin((12.0, -30.0, 45.0))
    img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    p = tmp_path / f"m{ext}"
    sitk.WriteImage(img, str(p), compress)
    ours = medselect.to_npy(p, tmp_path / "m.npy")
    assert_same(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(p))).transpose(2, 1, 0))
    info = medselect.inspect(p)
    assert np.allclose(info["affine"], sitk_affine_ras(img), atol=1e-5)


def test_metaimage_written_by_medselect_reads_in_simpleitk(tmp_path, medselect):
    src = nib.Nifti1Image(values(np.int16), AFFINES["oblique"])
    nib.save(src, tmp_path / "s.nii.gz")
    for name, extra in (("a.mha", []), ("b.mhd", ["--compress"])):
        medselect.run("convert", tmp_path / "s.nii.gz", tmp_path / name, *extra)
        itk = sitk.ReadImage(str(tmp_path / name))
        assert np.array_equal(sitk.GetArrayFromImage(itk).transpose(2, 1, 0), src.get_fdata())
        assert np.allclose(sitk_affine_ras(itk), src.affine, atol=1e-5)


def test_vector_metaimage(tmp_path, medselect):
    arr = RNG.integers(0, 256, (6, 5, 3)).astype(np.uint8)  # y, x, channel for a 2-D RGB image
    img = sitk.GetImageFromArray(arr, isVector=True)
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    ours = medselect.to_npy(tmp_path / "v.mha", tmp_path / "v.npy")
    assert_same(ours, arr.transpose(1, 0, 2))   # (nx, ny, channels)


def test_npy_roundtrip_all_orders(tmp_path, medselect):
    for order, dt in itertools.product("CF", ["<i2", ">f8", "<u2", "|u1", ">i4"]):
        a = np.asarray(values(np.int16), dtype=dt, order=order)
        np.save(tmp_path / "x.npy", a)
        medselect.run("convert", tmp_path / "x.npy", tmp_path / "x.nii")
        back = nib.load(tmp_path / "x.nii").get_fdata()
        assert np.array_equal(back, a.astype(np.float64))


def test_errors_are_one_line_and_nonzero(tmp_path, medselect):
    bad = tmp_path / "bad.nii.gz"
    img = nib.Nifti1Image(values(np.int16, (64, 64, 32)), np.eye(4))
    nib.save(img, tmp_path / "ok.nii.gz")
    data = (tmp_path / "ok.nii.gz").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    for path in (bad, tmp_path / "missing.nii", tmp_path):
        p = medselect.run("inspect", path, check=False)
        assert p.returncode == 1
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), p.stderr
    out = tmp_path / "never.nii"
    p = medselect.run("convert", bad, out, check=False)
    assert p.returncode == 1 and not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


# Phantom benchmarks: what `medselect phantom` writes reads the same in NiBabel / Pillow as in medselect.
@pytest.mark.parametrize("benchmark,size", [("cxr", 96), ("fundus", 96), ("prostate", 40)])
def test_phantom_files_read_identically(tmp_path, medselect, benchmark, size):
    out = tmp_path / benchmark
    medselect.run("phantom", "--benchmark", benchmark, "--count", 3, "--size", size, "--seed", 4, "--out", out, "--quiet")
    import csv
    rows = list(csv.DictReader(open(out / "phantom_cases.csv")))
    assert len(rows) == 15
    for row in rows:
        for rel in [row["image"]] + [m for m in row["masks"].split(";") if m]:
            f = out / rel
            ours = medselect.to_npy(f, tmp_path / "x.npy")
            if rel.endswith(".png"):
                ref = np.asarray(Image.open(f))
                assert_same(ours, ref)
            else:
                img = nib.load(f)
                assert_same(ours, img.get_fdata())
                info = medselect.inspect(f)
                assert np.allclose(np.array(info["affine"]), img.affine, atol=1e-5)
        if benchmark == "fundus":
            mask = np.asarray(Image.open(out / row["masks"]))
            assert set(np.unique(mask)) <= {0, 128, 255}
        if benchmark == "cxr":
            img = Image.open(out / row["image"])
            assert img.mode in ("I;16", "I;16B", "I")


@pytest.mark.parametrize("chunk", [b"IHDR", b"tEXt", b"IEND", b"IDAT"])
def test_png_chunk_crc(tmp_path, medselect, chunk):
    """A PNG with one damaged chunk CRC. medselect checks the chunks before the pixel data as Pillow does (refusing a
    bad IHDR or tEXt; OpenCV's libpng refuses IHDR only), leaves IDAT to zlib's Adler-32 as Pillow does (OpenCV
    refuses it), and, like both, does not refuse a bad IEND."""
    import io
    import struct
    from PIL import PngImagePlugin
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "phantom")
    pixels = values(np.uint8, (6, 5))
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    data = bytearray(buf.getvalue())
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == chunk:
            data[pos + 8 + length + 3] ^= 1
        pos += 12 + length
    p = tmp_path / "bad.png"
    p.write_bytes(bytes(data))
    try:
        with Image.open(p) as im:
            im.load()
        pillow_ok = True
    except (SyntaxError, OSError):
        pillow_ok = False
    opencv_ok = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None
    assert pillow_ok == (chunk in (b"IEND", b"IDAT")) and opencv_ok == (chunk in (b"tEXt", b"IEND"))
    r = medselect.run("inspect", str(p), check=False)
    if chunk in (b"IDAT", b"IEND"):
        assert r.returncode == 0, r.stderr
        assert np.array_equal(medselect.to_npy(p, tmp_path / "a.npy"), pixels)
    else:
        assert r.returncode == 1 and chunk.decode() in r.stderr and r.stderr.count("\n") == 1, r.stderr
