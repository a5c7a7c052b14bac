"""NRRD load reference: time load-to-float32-ndarray with SimpleITK and pynrrd.

A CT-like int16 volume (the phantom of nifti_read.py), by default 512 x 512 x 300 (x, y, z) as the issue's CT series,
written by SimpleITK as a gzip NRRD and as a raw NRRD (what 3D Slicer saves). Timed, files in the page cache:
  SimpleITK: sitk.GetArrayFromImage(sitk.ReadImage(p, sitk.sitkFloat32))
  pynrrd:    nrrd.read(p)[0].astype(np.float32)
Data dir: $ANCHOR_DATA/nrrd or a temp dir. Usage: python nrrd_read.py [--shape 512 512 300] [--iters 5]
"""
import argparse
import os

import nrrd
import numpy as np
import SimpleITK as sitk

import anchor_common as ac
from nifti_read import phantom


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    ac.set_threads(1)
    shape = tuple(a.shape)
    d = ac.data_dir("nrrd")
    vol = phantom(shape, np.int16)
    img = sitk.GetImageFromArray(vol.transpose(2, 1, 0))
    img.SetSpacing((0.7, 0.7, 1.0))
    for compress in (True, False):
        stem = f"ct_int16_{'x'.join(map(str, shape))}{'_gz' if compress else ''}.nrrd"
        p = os.path.join(d, stem)
        sitk.WriteImage(img, p, compress)
        for lib, fn in (("SimpleITK", lambda: sitk.GetArrayFromImage(sitk.ReadImage(p, sitk.sitkFloat32))),
                        ("pynrrd", lambda: nrrd.read(p)[0].astype(np.float32))):
            s = ac.summarize(ac.time_fn(fn, warmup=1, iters=a.iters))
            ac.emit({"bench": "nrrd_load_f32", "lib": lib, "file": stem, "size_mb": round(os.path.getsize(p) / 1e6, 1),
                     "median_ms": round(s["median_s"] * 1e3, 2), "min_ms": round(s["min_s"] * 1e3, 2)})


if __name__ == "__main__":
    main()
