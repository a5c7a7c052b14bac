"""NRRD (3D Slicer's format) against pynrrd and SimpleITK.

Files written by pynrrd in every encoding medselect reads (raw, gzip, ascii; attached .nrrd and detached .nhdr), both
endians, LPS and RAS spaces, oblique directions, a vector axis first and last; by SimpleITK; and files medselect
writes, read back by both. `medselect convert X out.npy` must give the reference array exactly and `inspect --json`
the affine (in RAS, 1e-5).
"""
import numpy as np
import nrrd
import pytest
import SimpleITK as sitk

from test_formats import RNG, assert_same, sitk_affine_ras, values

DIRECTIONS = np.array([[0.0, -0.8, 0.1], [0.9, 0.0, 0.0], [0.0, 0.05, 2.5]])   # rows: the step of axis i, j, k
ORIGIN = np.array([10.0, -20.0, 5.0])


def ras_affine(space, directions, origin):
    sign = {"left-posterior-superior": [-1, -1, 1], "right-anterior-superior": [1, 1, 1], "left-anterior-superior": [-1, 1, 1]}[space]
    a = np.eye(4)
    a[:3, :3] = np.diag(sign) @ directions.T
    a[:3, 3] = np.diag(sign) @ origin
    return a


@pytest.mark.parametrize("encoding,endian,detached,space,dtype", [
    ("raw", "little", False, "left-posterior-superior", np.int16),
    ("gzip", "little", False, "left-posterior-superior", np.float32),
    ("raw", "big", False, "right-anterior-superior", np.uint16),
    ("gzip", "big", True, "left-anterior-superior", np.int32),
    ("ascii", "little", False, "left-posterior-superior", np.uint8),
    ("raw", "little", True, "right-anterior-superior", np.float64),
    ("gzip", "little", False, "left-posterior-superior", np.int8),
    ("raw", "little", False, "left-posterior-superior", np.uint32),
])
def test_pynrrd_files(tmp_path, medselect, encoding, endian, detached, space, dtype):
    arr = values(dtype)   # x, y, z (pynrrd's default index order is Fortran: the first index is the fastest axis)
    header = {"space": space, "space directions": DIRECTIONS, "space origin": ORIGIN, "encoding": encoding, "endian": endian,
              "kinds": ["domain", "domain", "domain"]}
    p = tmp_path / ("v.nhdr" if detached else "v.nrrd")
    nrrd.write(str(p), arr, header, detached_header=detached)
    ours = medselect.to_npy(p, tmp_path / "v.npy")
    ref, _ = nrrd.read(str(p))
    assert_same(ours, ref)
    info = medselect.inspect(p)
    assert np.allclose(info["affine"], ras_affine(space, DIRECTIONS, ORIGIN), atol=1e-5)


@pytest.mark.parametrize("first", [True, False])
def test_vector_axis(tmp_path, medselect, first):
    arr = RNG.integers(0, 1000, (3, 7, 6, 5) if first else (7, 6, 5, 3)).astype(np.uint16)
    none = np.full(3, np.nan)   # pynrrd writes a row of NaNs as 'none'
    directions = np.array([none] + list(np.diag([0.5, 0.6, 2.0])) if first else list(np.diag([0.5, 0.6, 2.0])) + [none])
    kinds = ["vector", "domain", "domain", "domain"] if first else ["domain", "domain", "domain", "vector"]
    nrrd.write(str(tmp_path / "v.nrrd"), arr, {"space": "left-posterior-superior", "space directions": directions, "kinds": kinds})
    ours = medselect.to_npy(tmp_path / "v.nrrd", tmp_path / "v.npy")
    assert_same(ours, np.moveaxis(arr, 0, -1) if first else arr)   # space axes, then the values
    info = medselect.inspect(tmp_path / "v.nrrd")
    assert info["shape"][:3] == [7, 6, 5]


def test_simpleitk_files_and_ours_in_both(tmp_path, medselect):
    arr = values(np.int16)
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    img.SetSpacing((0.6, 0.7, 3.0))
    img.SetOrigin((12.0, -30.0, 45.0))
    img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    sitk.WriteImage(img, str(tmp_path / "s.nrrd"), True)
    ours = medselect.to_npy(tmp_path / "s.nrrd", tmp_path / "s.npy")
    assert_same(ours, arr)
    assert np.allclose(medselect.inspect(tmp_path / "s.nrrd")["affine"], sitk_affine_ras(img), atol=1e-5)
    # Ours, attached and detached, read back by SimpleITK and pynrrd with the same values and geometry.
    for name in ("o.nrrd", "o.nhdr"):
        medselect.run("convert", tmp_path / "s.nrrd", tmp_path / name)
        itk = sitk.ReadImage(str(tmp_path / name))
        assert np.array_equal(sitk.GetArrayFromImage(itk).transpose(2, 1, 0), arr)
        assert np.allclose(sitk_affine_ras(itk), sitk_affine_ras(img), atol=1e-5)
        back, header = nrrd.read(str(tmp_path / name))
        assert np.array_equal(back, arr) and header["space"] == "left-posterior-superior"


def test_no_space_uses_spacings_as_simpleitk(tmp_path, medselect):
    arr = values(np.uint8)
    nrrd.write(str(tmp_path / "n.nrrd"), arr, {"spacings": [0.5, 0.25, 2.0]})
    itk = sitk.ReadImage(str(tmp_path / "n.nrrd"))
    assert np.allclose(medselect.inspect(tmp_path / "n.nrrd")["affine"], sitk_affine_ras(itk), atol=1e-5)
    assert_same(medselect.to_npy(tmp_path / "n.nrrd", tmp_path / "n.npy"), arr)


@pytest.mark.parametrize("text,reason", [
    ("NRRD0004\ntype: int16\ndimension: 3\nsizes: 4000000000 4000000000 4000000000\nencoding: raw\n\n", "limit"),
    ("NRRD0004\ntype: uint8\ndimension: 2\nsizes: 4 4\nencoding: raw\ndata file: ../outside.raw\n", "outside the header's folder"),
    ("NRRD0004\ntype: uint8\ndimension: 2\nsizes: 4 4\nencoding: raw\ndata file: missing.raw\n", "was not found"),
    ("NRRD0004\ntype: uint8\ndimension: 2\nsizes: 4 4\nencoding: raw\n\n" + "x" * 10, "needs 16 bytes"),
    ("NRRD0004\ntype: block\ndimension: 2\nsizes: 4 4\nencoding: raw\n\n", "not supported"),
    ("NRRD0004\ntype: uint8\ndimension: 2\nsizes: 4 4\nencoding: bzip2\n\n", "bzip2"),
])
def test_hostile_headers_refused(tmp_path, medselect, text, reason):
    p = tmp_path / ("h.nhdr" if "data file" in text else "h.nrrd")
    p.write_bytes(text.encode())
    r = medselect.run("inspect", p, check=False) if "sizes: 4000000000" in text else medselect.run("convert", p, tmp_path / "h.npy", check=False)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and reason in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_gzip_block_that_ends_early(tmp_path, medselect):
    arr = values(np.int16)
    nrrd.write(str(tmp_path / "g.nrrd"), arr, {"encoding": "gzip"})
    data = (tmp_path / "g.nrrd").read_bytes()
    (tmp_path / "t.nrrd").write_bytes(data[: len(data) - 200])
    r = medselect.run("convert", tmp_path / "t.nrrd", tmp_path / "t.npy", check=False)
    assert r.returncode == 1 and ("holds" in r.stderr or "damaged" in r.stderr), r.stderr
