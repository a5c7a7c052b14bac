"""Reference timings for `medselect bench ops`: SciPy / MedPy / OpenCV on the same data, which this script writes.

Data (deterministic): two overlapping 512x512x128 masks with spacing 0.7 x 0.7 x 2.5 mm (smooth random blobs), and a
4096x4096 float32 image (CXR-like gradients + noise).
Timed: scipy.ndimage.distance_transform_edt(mask, sampling), MedPy hd95 (pooled) and the MONAI definition (two
directed 95th percentiles from MedPy's directed distances), and 4096^2 -> 256^2 resampling: SciPy zoom (order 1) after
a Gaussian anti-aliasing filter (sigma = (f - 1) / 2, as scikit-image's resize), and OpenCV INTER_AREA.
Usage: python bench_ops_ref.py OUT_DIR [--iters N]   (prints one JSON line per figure)
"""
import argparse
import json
import os
import time

import cv2
import medpy.metric.binary as mb
import nibabel as nib
import numpy as np
from scipy import ndimage


def timed(fn, iters):
    fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    shape, zooms = (512, 512, 128), (0.7, 0.7, 2.5)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    wobble = ndimage.zoom(rng.normal(0, 1, (16, 16, 4)).astype(np.float32), [s / n for s, n in zip(shape, (16, 16, 4))], order=1)
    pred = (x / 0.6) ** 2 + (y / 0.5) ** 2 + (z / 0.7) ** 2 + 0.15 * wobble < 1
    ref = ((x - 0.05) / 0.58) ** 2 + ((y + 0.03) / 0.52) ** 2 + (z / 0.72) ** 2 - 0.12 * wobble < 1
    aff = np.diag(list(zooms) + [1.0])
    nib.save(nib.Nifti1Image(pred.astype(np.uint8), aff), os.path.join(a.out, "pred.nii.gz"))
    nib.save(nib.Nifti1Image(ref.astype(np.uint8), aff), os.path.join(a.out, "ref.nii.gz"))
    yy, xx = np.mgrid[0:4096, 0:4096].astype(np.float32) / 4096
    img = (2000 + 1500 * np.sin(7 * xx) * np.cos(5 * yy) + rng.normal(0, 60, (4096, 4096))).astype(np.float32)
    np.save(os.path.join(a.out, "image.npy"), img.T.copy())   # (x, y) so medselect reads it as 4096 x 4096
    emit = lambda d: print(json.dumps(d), flush=True)

    emit({"bench": "edt", "lib": "SciPy", "median_ms": timed(lambda: ndimage.distance_transform_edt(pred, sampling=zooms), a.iters)})
    emit({"bench": "hd95", "lib": "MedPy", "median_ms": timed(lambda: mb.hd95(pred, ref, voxelspacing=zooms), a.iters)})

    def monai_style():
        d1 = mb.__surface_distances(pred, ref, zooms, 1)
        d2 = mb.__surface_distances(ref, pred, zooms, 1)
        return max(np.percentile(d1, 95), np.percentile(d2, 95))
    emit({"bench": "hd95", "lib": "MONAI-style (SciPy)", "median_ms": timed(monai_style, a.iters)})

    f = 4096 / 256
    def scipy_resize():
        smooth = ndimage.gaussian_filter(img, (f - 1) / 2)
        return ndimage.zoom(smooth, 256 / 4096, order=1, grid_mode=True, mode="grid-constant")
    emit({"bench": "resample2d", "lib": "SciPy (Gaussian + zoom)", "median_ms": timed(scipy_resize, a.iters)})
    emit({"bench": "resample2d", "lib": "OpenCV INTER_AREA", "median_ms": timed(lambda: cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA), a.iters)})


if __name__ == "__main__":
    main()
