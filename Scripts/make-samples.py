"""Writes the small sample set in Samples/ (run with the test environment's Python: `$(Scripts/pyenv) Scripts/make-samples.py`).

These are simple analytic phantoms so that `Scripts/demo` has real files in the real formats to work on; the
multi-site phantom generator (`medselect phantom`) replaces them with realistic benchmarks.
Files: one prostate-MRI-like volume with its segmentation (NIfTI, anisotropic, LPS-stored), one chest-X-ray-like
16-bit PNG with a lung mask, one fundus-like RGB PNG with a disc/cup mask, one MetaImage copy of the volume.
"""
import os
import sys

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Samples")
rng = np.random.default_rng(7)

# Prostate-like MRI: 96 x 96 x 20, 0.6 x 0.6 x 3.0 mm, stored LPS (the usual DICOM-converted layout).
os.makedirs(os.path.join(root, "prostate", "RUNMC"), exist_ok=True)
x, y, z = np.meshgrid(np.linspace(-1, 1, 96), np.linspace(-1, 1, 96), np.linspace(-1, 1, 20), indexing="ij")
body = (x / 0.95) ** 2 + (y / 0.8) ** 2 < 1
gland = ((x / 0.22) ** 2 + ((y + 0.1) / 0.18) ** 2 + (z / 0.6) ** 2) < 1
bladder = ((x / 0.3) ** 2 + ((y + 0.1) / 0.25) ** 2 + ((z - 0.75) / 0.35) ** 2) < 1
rectum = ((x / 0.15) ** 2 + ((y - 0.35) / 0.12) ** 2) < 1
vol = np.where(body, 300.0, 20.0) + 250 * bladder + 120 * gland - 200 * rectum * body
vol = vol * (1 + 0.3 * (y + 1)) + rng.normal(0, 15, vol.shape)
vol = np.clip(vol, 0, None).astype(np.int16)
aff = np.diag([-0.6, -0.6, 3.0, 1.0])
aff[:3, 3] = [28.5, 28.5, -28.5]
nib.save(nib.Nifti1Image(vol, aff), os.path.join(root, "prostate", "RUNMC", "Case00.nii.gz"))
nib.save(nib.Nifti1Image(gland.astype(np.uint8), aff), os.path.join(root, "prostate", "RUNMC", "Case00_segmentation.nii.gz"))
itk = sitk.GetImageFromArray(vol.transpose(2, 1, 0))
itk.SetSpacing((0.6, 0.6, 3.0))
itk.SetOrigin((-28.5, -28.5, -28.5))
sitk.WriteImage(itk, os.path.join(root, "prostate", "Case00.mha"), True)

# Chest X-ray-like 16-bit PNG, 256 x 256, with a left+right lung mask (Montgomery-style 0/255).
os.makedirs(os.path.join(root, "cxr", "CXR_png"), exist_ok=True)
os.makedirs(os.path.join(root, "cxr", "ManualMask", "leftMask"), exist_ok=True)
os.makedirs(os.path.join(root, "cxr", "ManualMask", "rightMask"), exist_ok=True)
yy, xx = np.mgrid[0:256, 0:256] / 255.0
right = ((xx - 0.3) / 0.16) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
left = ((xx - 0.7) / 0.15) ** 2 + ((yy - 0.5) / 0.28) ** 2 < 1
cxr = 2600 - 1500 * (right | left) + 500 * np.exp(-((xx - 0.55) ** 2 + (yy - 0.62) ** 2) / 0.01)
cxr = cxr + 300 * np.sin(yy * 40) * (right | left) + rng.normal(0, 40, cxr.shape)
cxr = np.clip(cxr, 0, 4095).astype(np.uint16)
Image.fromarray(cxr).save(os.path.join(root, "cxr", "CXR_png", "MCUCXR_0001_0.png"))
Image.fromarray((left * 255).astype(np.uint8)).save(os.path.join(root, "cxr", "ManualMask", "leftMask", "MCUCXR_0001_0.png"))
Image.fromarray((right * 255).astype(np.uint8)).save(os.path.join(root, "cxr", "ManualMask", "rightMask", "MCUCXR_0001_0.png"))

# Fundus-like RGB PNG, 128 x 128, with a disc/cup mask (0 background, 128 disc, 255 cup: one documented RIGA-style encoding).
os.makedirs(os.path.join(root, "fundus"), exist_ok=True)
yy, xx = np.mgrid[0:128, 0:128] / 127.0
r = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
fov = r < 0.48
disc = ((xx - 0.68) ** 2 + (yy - 0.5) ** 2) < 0.01
cup = ((xx - 0.68) ** 2 + (yy - 0.5) ** 2) < 0.004
rgb = np.stack([fov * (170 - 60 * r) + 70 * disc, fov * (70 - 30 * r) + 60 * disc, fov * 25 + 20 * disc], -1)
rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape) * fov[..., None], 0, 255).astype(np.uint8)
Image.fromarray(rgb).save(os.path.join(root, "fundus", "image_01.png"))
Image.fromarray((disc * 128 + cup * 127).astype(np.uint8)).save(os.path.join(root, "fundus", "image_01-mask.png"))
print("wrote", os.path.normpath(root), file=sys.stderr)
