"""DICOM series reference: a CT series read to a float32 array by SimpleITK, and converted to NIfTI by dcm2niix and by
`medselect convert`, timed in one harness on the same files.

The series: the CT-like int16 phantom of nifti_read.py, by default 512 x 512 x 300 (x, y, z), 0.7 x 0.7 x 1.0 mm,
written by SimpleITK's GDCM writer as 300 single-slice files (signed 16-bit, uncompressed), names shuffled so that no
reader can rely on them. Timed with the files in the page cache:
  SimpleITK load:    sitk.GetArrayFromImage(ImageSeriesReader(files of the folder, sorted by GDCM), float32)
  dcm2niix:          dcm2niix -z n -b n -f out -o OUT FOLDER        (uncompressed NIfTI, no BIDS sidecar)
  medselect convert: medselect convert FOLDER OUT/out.nii            (with --medselect PATH)
Data dir: $ANCHOR_DATA/dicom or a temp dir. Usage: python dicom_read.py [--shape 512 512 300] [--iters 5] [--medselect BIN]
"""
import argparse
import os
import random
import shutil
import subprocess
import tempfile

import numpy as np
import SimpleITK as sitk

import anchor_common as ac
from nifti_read import phantom


def write_series(vol, folder):
    os.makedirs(folder, exist_ok=True)
    img = sitk.GetImageFromArray(vol.transpose(2, 1, 0))
    img.SetSpacing((0.7, 0.7, 1.0))
    img.SetOrigin((-179.2, -179.2, -150.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    names = list(range(img.GetDepth()))
    random.Random(0).shuffle(names)
    study, series = "1.2.826.0.1.3680043.2.1125.9.1", "1.2.826.0.1.3680043.2.1125.9.2"
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        o = img.TransformIndexToPhysicalPoint((0, 0, k))
        for key, value in {"0008|0060": "CT", "0008|0070": "GE MEDICAL SYSTEMS", "0008|1090": "Revolution", "0020|000d": study,
                           "0020|000e": series, "0008|0018": f"{series}.{k + 1}", "0020|0013": str(k + 1),
                           "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0032": "\\".join(f"{v:.4f}" for v in o),
                           "0018|0050": "1.0", "0010|0010": "BENCH^CT", "0010|0020": "BENCH", "0020|0011": "2",
                           "0008|0020": "20240102", "0008|0021": "20240102", "0008|0022": "20240102",
                           "0008|0030": "101500", "0008|0031": "101500", "0008|0032": "101500", "0008|0033": "101500"}.items():
            s.SetMetaData(key, value)
        writer.SetFileName(os.path.join(folder, f"IM{names[k]:05d}"))
        writer.Execute(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--medselect")
    a = ap.parse_args()
    shape = tuple(a.shape)
    d = ac.data_dir("dicom")
    stem = f"ct_series_{'x'.join(map(str, shape))}"
    folder = os.path.join(d, stem)
    if not os.path.isdir(folder) or len(os.listdir(folder)) != shape[2]:
        shutil.rmtree(folder, ignore_errors=True)
        write_series(phantom(shape, np.int16), folder)
    size_mb = round(sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1e6, 1)

    def sitk_load():
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(folder))
        r.SetOutputPixelType(sitk.sitkFloat32)
        return sitk.GetArrayFromImage(r.Execute())

    out = tempfile.mkdtemp()
    commands = []
    if shutil.which("dcm2niix"):
        commands.append(("dcm2niix", ["dcm2niix", "-z", "n", "-b", "n", "-f", "out", "-o", out, folder]))
    if a.medselect:
        commands.append(("medselect", [a.medselect, "convert", folder, os.path.join(out, "ours.nii")]))

    def run(cmd):
        def fn():
            for f in os.listdir(out):
                os.remove(os.path.join(out, f))
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return fn

    s = ac.summarize(ac.time_fn(sitk_load, warmup=1, iters=a.iters))
    ac.emit({"bench": "dicom_series_load_f32", "lib": "SimpleITK", "file": stem, "size_mb": size_mb,
             "median_ms": round(s["median_s"] * 1e3, 2), "min_ms": round(s["min_s"] * 1e3, 2)})
    # The two converters alternate (A B A B ...), so that load on the machine falls on both alike.
    times = {name: [] for name, _ in commands}
    for name, cmd in commands:
        run(cmd)()   # warm-up
    for _ in range(a.iters):
        for name, cmd in commands:
            times[name] += ac.time_fn(run(cmd), warmup=0, iters=1)
    for name, t in times.items():
        s = ac.summarize(t)
        ac.emit({"bench": "dicom_series_to_nifti", "lib": name, "file": stem, "size_mb": size_mb,
                 "median_ms": round(s["median_s"] * 1e3, 2), "min_ms": round(s["min_s"] * 1e3, 2)})
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
