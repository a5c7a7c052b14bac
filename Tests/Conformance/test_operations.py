"""Cross-checks of image operations and metrics against NiBabel, SciPy and MedPy.

- reorientation: `convert --reorient RAS` versus `nib.as_closest_canonical` (data and affine);
- distance transform: `distance-map` versus `scipy.ndimage.distance_transform_edt(mask, sampling=zooms)`;
- metrics: `metrics --json` versus MedPy's dc, jc, hd, hd95 (pooled), assd, and MONAI's HD95 definition (larger of
  the two directed 95th percentiles of MedPy's directed surface distances), on random blobs with anisotropic spacing.
Tolerances: 1e-4 for Dice, half the smallest spacing for distances (the issue's acceptance); in practice they agree to
float rounding.
"""
import json

import medpy.metric.binary as mb
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

RNG = np.random.default_rng(11)
AFFINES = {
    "LPS": np.array([[-0.7, 0, 0, 40], [0, -0.8, 0, 50], [0, 0, 3.0, -20], [0, 0, 0, 1]]),
    "ALS": np.array([[0, -0.8, 0, 10], [0.9, 0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]]),
    "oblique": np.array([[0.0, -0.8, 0.1, 10.0], [0.9, 0.0, 0.0, -20.0], [0.0, 0.05, 2.5, 5.0], [0, 0, 0, 1]]),
    "PIR": np.array([[0, 0, 1.2, 3], [-0.6, 0, 0, 2], [0, -0.6, 0, 1], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", list(AFFINES))
def test_reorient_matches_as_closest_canonical(tmp_path, medselect, name):
    data = RNG.integers(-500, 500, (7, 6, 5)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, AFFINES[name]), tmp_path / "a.nii.gz")
    ref = nib.as_closest_canonical(nib.load(tmp_path / "a.nii.gz"))
    medselect.run("convert", tmp_path / "a.nii.gz", tmp_path / "r.nii.gz", "--reorient", "RAS")
    ours = nib.load(tmp_path / "r.nii.gz")
    assert np.array_equal(ours.get_fdata(), ref.get_fdata())
    assert np.allclose(ours.affine, ref.affine, atol=1e-5)
    assert "".join(nib.aff2axcodes(ours.affine)) == "RAS"


def blob(shape, centre, radii):
    grid = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    r = sum(((g - c) / rr) ** 2 for g, c, rr in zip(grid, centre, radii))
    noise = ndimage.gaussian_filter(RNG.normal(0, 1, shape), 1.5) * 0.6
    return (r + noise) < 1


CASES = [((40, 36, 12), (0.6, 0.7, 3.0)), ((48, 40, 1), (0.2, 0.25, 1.0)), ((30, 30, 30), (1.0, 1.0, 1.0)),
         ((64, 50, 16), (0.4, 0.45, 2.5))]


@pytest.mark.parametrize("shape,zooms", CASES)
def test_distance_map_matches_scipy(tmp_path, medselect, shape, zooms):
    m = blob(shape, [s / 2 for s in shape], [s / 3 for s in shape])
    img = nib.Nifti1Image(m.astype(np.uint8), np.diag(list(zooms) + [1.0]))
    nib.save(img, tmp_path / "m.nii.gz")
    medselect.run("distance-map", tmp_path / "m.nii.gz", tmp_path / "d.nii.gz")
    ours = nib.load(tmp_path / "d.nii.gz").get_fdata()
    squeezed = m[..., 0] if shape[2] == 1 else m
    ref = ndimage.distance_transform_edt(squeezed, sampling=zooms[: squeezed.ndim])
    if shape[2] == 1:
        ref = ref[..., None]
    assert np.allclose(ours, ref, rtol=1e-5, atol=1e-4)


def directed(a, b, zooms):
    return mb.__surface_distances(a, b, voxelspacing=zooms, connectivity=1)


@pytest.mark.parametrize("shape,zooms", CASES)
def test_metrics_match_medpy_and_monai_definitions(tmp_path, medselect, shape, zooms):
    c = [s / 2 for s in shape[:2]] + ([shape[2] / 2] if shape[2] > 1 else [0])
    rz = [shape[2] / 3.2] if shape[2] > 1 else [1]
    pred = blob(shape, c, [s / 3.2 for s in shape[:2]] + rz)
    ref = blob(shape, [c[0] + 2, c[1] - 1, c[2]], [s / 3.0 for s in shape[:2]] + rz)
    if shape[2] == 1:
        pred[..., 0] |= blob(shape[:2], (8, 8), (3, 4))     # a second, separate component
    aff = np.diag(list(zooms) + [1.0])
    nib.save(nib.Nifti1Image(pred.astype(np.uint8), aff), tmp_path / "p.nii.gz")
    nib.save(nib.Nifti1Image(ref.astype(np.uint8), aff), tmp_path / "r.nii.gz")
    out = json.loads(medselect.run("metrics", tmp_path / "p.nii.gz", tmp_path / "r.nii.gz", "--json").stdout)["labels"]["1"]
    pooled = json.loads(medselect.run("metrics", tmp_path / "p.nii.gz", tmp_path / "r.nii.gz", "--json", "--hd95", "pooled")
                        .stdout)["labels"]["1"]
    p2, r2, z2 = (pred[..., 0], ref[..., 0], zooms[:2]) if shape[2] == 1 else (pred, ref, zooms)
    half = min(zooms[: p2.ndim]) / 2
    assert abs(out["dice"] - mb.dc(p2, r2)) < 1e-4
    assert abs(out["iou"] - mb.jc(p2, r2)) < 1e-4
    assert abs(out["hausdorff_mm"] - mb.hd(p2, r2, voxelspacing=z2)) < half
    assert abs(pooled["hausdorff95_mm"] - mb.hd95(p2, r2, voxelspacing=z2)) < half
    assert abs(out["assd_mm"] - mb.assd(p2, r2, voxelspacing=z2)) < half
    monai_hd95 = max(np.percentile(directed(p2, r2, z2), 95), np.percentile(directed(r2, p2, z2), 95))
    assert abs(out["hausdorff95_mm"] - monai_hd95) < half
    # and in fact to rounding:
    assert abs(out["hausdorff95_mm"] - monai_hd95) < 1e-6


def test_resampled_labels_keep_their_values(tmp_path, medselect):
    lab = RNG.choice([0, 1, 2, 7], size=(33, 29, 9)).astype(np.uint8)
    nib.save(nib.Nifti1Image(lab, np.diag([0.5, 0.5, 3, 1])), tmp_path / "l.nii.gz")
    medselect.run("convert", tmp_path / "l.nii.gz", tmp_path / "o.nii.gz", "--label", "--spacing", "0.8,0.8,1.1",
                  "--interpolation", "cubic")
    out = nib.load(tmp_path / "o.nii.gz")
    assert set(np.unique(out.get_fdata())) <= {0, 1, 2, 7}
    # the field of view is kept: corner (-0.5, -0.5, -0.5) maps to the same world point
    corner = np.array([-0.5, -0.5, -0.5, 1])
    assert np.allclose(out.affine @ corner, np.diag([0.5, 0.5, 3, 1]) @ corner, atol=1e-4)
