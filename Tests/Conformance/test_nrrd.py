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


def write_segmentation(path, layers, segments, origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 2.0)):
    """A segmentation as 3D Slicer writes it: one layer as a 3-D label map, several as a list axis first."""
    header = {"space": "left-posterior-superior", "space origin": np.array(origin, float), "encoding": "gzip",
              "Segmentation_MasterRepresentation": "Binary labelmap", "Segmentation_ContainedRepresentationNames": "Binary labelmap|"}
    directions = np.diag(spacing)
    if len(layers) == 1:
        data, header["space directions"], header["kinds"] = layers[0], directions, ["domain"] * 3
    else:
        data = np.stack(layers)
        header["space directions"] = np.vstack([np.full(3, np.nan), directions])
        header["kinds"] = ["list", "domain", "domain", "domain"]
    for i, (name, value, layer) in enumerate(segments):
        header.update({f"Segment{i}_ID": f"Segment_{i + 1}", f"Segment{i}_Name": name, f"Segment{i}_LabelValue": str(value),
                       f"Segment{i}_Layer": str(layer), f"Segment{i}_Color": "0.5 0.5 0.5"})
    nrrd.write(str(path), data.astype(np.uint8), header, custom_field_map={k: "string" for k in header if k.startswith("Segment")})


def test_slicer_segmentation_layers_merge(tmp_path, medselect):
    a = np.zeros((6, 5, 4), np.uint8); a[1:3, 1:3, 1] = 1; a[4, 4, 3] = 2
    b = np.zeros((6, 5, 4), np.uint8); b[0, 0, 0] = 1
    write_segmentation(tmp_path / "one.seg.nrrd", [a], [("gland", 1, 0), ("lesion", 2, 0)])
    assert_same(medselect.to_npy(tmp_path / "one.seg.nrrd", tmp_path / "one.npy"), a)
    # Two layers, one value each: the segments are numbered in file order (the values collide).
    write_segmentation(tmp_path / "two.seg.nrrd", [np.where(a == 1, 1, 0), b], [("gland", 1, 0), ("lesion", 1, 1)])
    expected = np.where(a == 1, 1, 0) + 2 * b
    assert_same(medselect.to_npy(tmp_path / "two.seg.nrrd", tmp_path / "two.npy"), expected.astype(np.uint8))
    assert medselect.inspect(tmp_path / "two.seg.nrrd")["channels"] == 1   # the layers merged
    # Overlapping segments are refused with their names.
    c = np.where(a == 1, 1, 0)
    write_segmentation(tmp_path / "over.seg.nrrd", [c, c.copy()], [("gland", 1, 0), ("capsule", 1, 1)])
    r = medselect.run("convert", tmp_path / "over.seg.nrrd", tmp_path / "o.npy", check=False)
    assert r.returncode == 1 and "'gland' and 'capsule' overlap" in r.stderr, r.stderr


def test_cropped_segmentation_onto_its_image(tmp_path, medselect):
    """Slicer saves a segmentation cropped to its segments: `convert --onto` places it on the image's grid."""
    image = values(np.int16, (10, 9, 6))
    nrrd.write(str(tmp_path / "img.nrrd"), image, {"space": "left-posterior-superior", "space directions": np.diag([1.0, 1.0, 2.0]),
                                                  "space origin": np.array([5.0, -3.0, 10.0]), "kinds": ["domain"] * 3})
    seg = np.zeros((4, 3, 2), np.uint8); seg[1, 1, 1] = 1; seg[3, 2, 0] = 1
    offset = np.array([2, 4, 3])   # voxel offset of the crop in the image
    write_segmentation(tmp_path / "crop.seg.nrrd", [seg], [("gland", 1, 0)], origin=np.array([5.0, -3.0, 10.0]) + offset * [1.0, 1.0, 2.0])
    medselect.run("convert", tmp_path / "crop.seg.nrrd", tmp_path / "placed.nrrd", "--label", "--onto", tmp_path / "img.nrrd")
    placed, _ = nrrd.read(str(tmp_path / "placed.nrrd"))
    expected = np.zeros(image.shape, np.uint8)
    expected[2:6, 4:7, 3:5] = seg
    assert np.array_equal(placed, expected)
