"""Exported datasets checked by the tools that will read them.

nnU-Net v2's own `verify_dataset_integrity` runs when MEDSELECT_NNUNET_PYTHON names a Python with nnunetv2 (and
PyTorch) installed — `Scripts/check-nnunet` builds one (about 6 GB, so it is not part of the default test run). The
MONAI datalist is read back as MONAI's `load_decathlon_datalist` reads it (plain JSON lists of image/label paths).
"""
import json
import os
import subprocess

import nibabel as nib
import numpy as np
import pytest
from PIL import Image


def export(medselect, tmp_path, benchmark, size, count, extra=()):
    root = tmp_path / benchmark
    medselect.run("phantom", "--benchmark", benchmark, "--count", count, "--size", size, "--seed", 3, "--out", root, "--quiet")
    db = tmp_path / f"{benchmark}.sqlite"
    medselect.run("index", root, "--db", db, "--quiet")
    out = tmp_path / "raw"
    medselect.run("export", "--db", db, "--format", "nnunet", "--id", 600 + len(benchmark), "--name", benchmark.upper(), "--out", out,
                  "--quiet", *extra)
    return db, next(p for p in out.iterdir() if p.name.endswith(benchmark.upper()))


def load(path):
    return np.asarray(Image.open(path)) if str(path).endswith(".png") else np.asanyarray(nib.load(path).dataobj)


@pytest.mark.parametrize("benchmark,size,count,extra", [("prostate", 32, 2, ()), ("prostate", 32, 2, ("--slices", "axial")),
                                                         ("fundus", 48, 3, ()), ("cxr", 48, 3, ())])
def test_nnunet_export(tmp_path, medselect, benchmark, size, count, extra):
    _, folder = export(medselect, tmp_path, benchmark, size, count, extra)
    meta = json.load(open(folder / "dataset.json"))
    ending = meta["file_ending"]
    labels = sorted(meta["labels"].values())
    assert labels == list(range(len(labels))) and meta["labels"]["background"] == 0
    cases = sorted(p.name[: -len(ending)] for p in (folder / "labelsTr").iterdir())
    assert meta["numTraining"] == len(cases)
    for c in cases:
        img = load(folder / "imagesTr" / f"{c}_0000{ending}")
        lab = load(folder / "labelsTr" / f"{c}{ending}")
        assert img.shape[:2] == lab.shape[:2]
        assert set(np.unique(lab)) <= set(labels)
        if ending == ".nii.gz":
            assert np.allclose(nib.load(folder / "imagesTr" / f"{c}_0000{ending}").affine, nib.load(folder / "labelsTr" / f"{c}{ending}").affine)
    python = os.environ.get("MEDSELECT_NNUNET_PYTHON")
    if not python:
        pytest.skip("nnU-Net's own check: set MEDSELECT_NNUNET_PYTHON (Scripts/check-nnunet builds the environment)")
    env = dict(os.environ, nnUNet_raw=str(folder.parent), nnUNet_preprocessed=str(folder.parent / "pp"), nnUNet_results=str(folder.parent / "res"))
    p = subprocess.run([python, "-c", "import sys\nfrom nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity\n"
                        "verify_dataset_integrity(sys.argv[1], num_processes=1)", str(folder)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr


def test_monai_datalist(tmp_path, medselect):
    root = tmp_path / "fundus"
    medselect.run("phantom", "--benchmark", "fundus", "--count", 5, "--size", 32, "--seed", 1, "--out", root, "--quiet")
    db = tmp_path / "f.sqlite"
    medselect.run("index", root, "--db", db, "--quiet")
    out = tmp_path / "list" / "datalist.json"
    medselect.run("export", "--db", db, "--format", "monai", "--out", out)
    data = json.load(open(out))
    assert len(data["training"]) == 20 and len(data["validation"]) == 5
    for e in data["training"] + data["validation"]:
        img, lab = np.asarray(Image.open(e["image"])), np.asarray(Image.open(e["label"]))
        assert img.shape[:2] == lab.shape and set(np.unique(lab)) <= {0, 1, 2}


def test_weights_read_by_python_safetensors(tmp_path, medselect):
    from safetensors.numpy import load_file
    path = tmp_path / "unet.safetensors"
    medselect.run("bench", "unet", "--size", 16, "--batch", 1, "--iters", 1, "--warmup", 0, "--save", path)
    tensors = load_file(str(path))
    # Named as PyTorch's state_dict(): parameters plus the batch norms' running statistics.
    stats = {k: t for k, t in tensors.items() if k.endswith((".running_mean", ".running_var"))}
    params = {k: t for k, t in tensors.items() if k not in stats and not k.endswith(".num_batches_tracked")}
    assert sum(t.size for t in params.values()) == 1942306     # the PyTorch benchmark U-Net's parameter count
    assert len(stats) > 0 and all(k[:-len("running_mean")] + "running_var" in stats
                                  for k in stats if k.endswith("running_mean"))
    assert all(np.isfinite(t).all() for t in tensors.values())
    assert all(t.dtype == np.float32 for t in {**params, **stats}.values())
