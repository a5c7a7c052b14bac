"""DICOM series (folders of slices) against SimpleITK's ImageSeriesReader and dcm2niix: series written by SimpleITK
with an oblique orientation, shuffled file names and instance numbers, two series in one folder; the same voxels and
geometry, and dcm2niix's NIfTI compared in world space. Series that are not one regular volume (slices of different
sizes, a missing slice, two slices at one position, gantry tilt) and damaged files are refused with one line."""
import os
import random
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from test_formats import sitk_affine_ras


def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def volume(shape=(40, 32, 12), seed=0):
    """An int16 volume (x, y, z) with structure and negative values, as SimpleITK wants it (z, y, x)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    arr = (200 * np.sin(x / 5.0) + 150 * np.cos(y / 4.0) + 30 * z + rng.integers(-20, 20, shape)).astype(np.int16)
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    return arr, img


def write_series(img, folder, series_uid, *, description="T1 AX", manufacturer="SIEMENS", model="Prisma",
                 patient="PAT-0042", shuffle=True, names=None, drop=None, tilt_mm=0.0, seed=1, number=1):
    """Writes `img` slice by slice as SimpleITK's DICOM series example does, with scanner and patient tags."""
    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")   # file names without an extension, as PACS exports have them
    direction = img.GetDirection()
    n = img.GetDepth()
    order = list(range(n))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    for k in range(n):
        if drop is not None and k == drop:
            continue
        s = img[:, :, k]
        origin = np.array(img.TransformIndexToPhysicalPoint((0, 0, k)))
        origin = origin + np.array(direction[0::3]) * tilt_mm * k   # a shear along the rows: gantry tilt
        tags = {
            "0008|0060": "MR", "0008|0070": manufacturer, "0008|1090": model, "0018|0087": "3",
            "0008|1010": "STATION7", "0008|0080": "General Hospital", "0018|1000": "SN123", "0018|1020": "VE11C",
            "0008|0022": "20190314", "0008|0021": "20190314", "0008|0020": "20190314",
            "0008|0030": "101500", "0008|0031": "101500", "0008|0032": "101500", "0008|0033": "101500",
            "0010|0010": "DOE^JANE", "0010|0020": patient, "0010|0030": "19700101", "0008|0050": "ACC778899",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1.1", "0020|000e": series_uid, "0008|103e": description,
            "0020|0011": str(number),
            "0020|0037": "\\".join(map(str, (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7]))),
            "0020|0032": "\\".join(map(str, origin)),
            "0020|0013": str(n - k),   # instance numbers run against the slice order: they must not decide it
            "0008|0018": f"{series_uid}.{k + 1}",
            "0018|0050": str(img.GetSpacing()[2]),
        }
        for key, value in tags.items():
            s.SetMetaData(key, value)
        name = names[k] if names else f"IM{order[k]:04d}"
        writer.SetFileName(os.path.join(folder, name))
        writer.Execute(s)


def sitk_series(folder, uid=None):
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder), uid) if uid else reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(files)
    return reader.Execute()


def oblique_image(shape=(40, 32, 12), seed=0):
    arr, img = volume(shape, seed)
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetOrigin((-12.5, 30.25, 7.0))
    img.SetDirection(tuple(rotation(0.3, -0.2, 0.5).flatten()))
    return arr, img


def test_oblique_series_with_shuffled_names(tmp_path, medselect):
    arr, img = oblique_image()
    write_series(img, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.2")
    ref = sitk_series(tmp_path / "s")
    ours = medselect.to_npy(tmp_path / "s", tmp_path / "x.npy")
    assert ours.shape == arr.shape
    assert np.array_equal(ours, sitk.GetArrayFromImage(ref).transpose(2, 1, 0))
    assert np.array_equal(ours, arr)
    info = medselect.inspect(tmp_path / "s")
    assert np.allclose(info["affine"], sitk_affine_ras(ref), atol=1e-4)


def test_two_series_in_one_folder(tmp_path, medselect):
    _, a = oblique_image(seed=0)
    arr_b, b = volume((24, 20, 6), seed=3)
    b.SetSpacing((1.0, 1.0, 3.0))
    write_series(a, tmp_path / "d", "1.2.826.0.1.3680043.2.1125.1.3", description="T1 AX", number=1)
    write_series(b, tmp_path / "d", "1.2.826.0.1.3680043.2.1125.1.4", description="T2 COR", number=2,
                 names=[f"B{k:03d}.dcm" for k in range(6)])
    r = medselect.run("convert", tmp_path / "d", tmp_path / "x.npy", check=False)
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    for text in ["2 series", "--series", "1.2.826.0.1.3680043.2.1125.1.3", "1.2.826.0.1.3680043.2.1125.1.4", "T2 COR", "(6 files)", "(12 files)"]:
        assert text in r.stderr, (text, r.stderr)
    medselect.run("convert", tmp_path / "d", tmp_path / "b.npy", "--series", "1.2.826.0.1.3680043.2.1125.1.4")
    ref = sitk_series(tmp_path / "d", "1.2.826.0.1.3680043.2.1125.1.4")
    assert np.array_equal(np.load(tmp_path / "b.npy"), sitk.GetArrayFromImage(ref).transpose(2, 1, 0))
    assert np.array_equal(np.load(tmp_path / "b.npy"), arr_b)
    r = medselect.run("convert", tmp_path / "d", tmp_path / "c.npy", "--series", "1.2.3.4", check=False)
    assert r.returncode != 0 and "no series 1.2.3.4" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def world_values(data, affine, points):
    """Values of `data` at world points (RAS) by the nearest voxel; nan outside."""
    ijk = np.rint(np.linalg.solve(affine, np.vstack([points.T, np.ones(len(points))]))[:3].T).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(data.shape[:3])), axis=1)
    out = np.full(len(points), np.nan)
    out[inside] = data[tuple(ijk[inside].T)]
    return out


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix (Debian's dcm2niix) is not installed")
def test_matches_dcm2niix_in_world_space(tmp_path, medselect):
    arr, img = oblique_image()
    write_series(img, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.5")
    os.makedirs(tmp_path / "n")
    p = subprocess.run(["dcm2niix", "-z", "n", "-f", "ref", "-o", str(tmp_path / "n"), str(tmp_path / "s")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ref = nib.load(str(tmp_path / "n" / "ref.nii"))
    medselect.run("convert", tmp_path / "s", tmp_path / "ours.nii.gz")
    ours = nib.load(str(tmp_path / "ours.nii.gz"))
    data = np.asarray(ours.dataobj)
    # Every voxel centre of ours, in world space, holds dcm2niix's value there.
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1).reshape(-1, 3)
    world = (ours.affine @ np.hstack([idx, np.ones((len(idx), 1))]).T)[:3].T
    theirs = world_values(np.asarray(ref.dataobj), ref.affine, world)
    assert not np.isnan(theirs).any()
    assert np.array_equal(theirs, data.reshape(-1))
    assert np.allclose(np.abs(np.linalg.det(ours.affine[:3, :3])), np.abs(np.linalg.det(ref.affine[:3, :3])), rtol=1e-4)


def refused(medselect, folder, *words):
    r = medselect.run("convert", folder, folder.parent / "out.npy", check=False)
    assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_missing_slice_refused(tmp_path, medselect):
    _, img = oblique_image()
    write_series(img, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.6", drop=5)
    refused(medselect, tmp_path / "s", "missing slice", "1.2.826.0.1.3680043.2.1125.1.6")


def test_damaged_slices_refused_naming_the_first(tmp_path, medselect):
    # Slices decode in parallel: two with too little pixel data (headers intact, so the series orders fine), and the
    # error names the first of them in series order, whichever finished first.
    _, img = oblique_image()
    uid = "1.2.826.0.1.3680043.2.1125.1.8"
    write_series(img, tmp_path / "s", uid)
    damaged = {}
    for path in sorted((tmp_path / "s").iterdir()):
        ds = pydicom.dcmread(path)
        k = int(ds.SOPInstanceUID.rsplit(".", 1)[1]) - 1
        if k in (3, 8):
            ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
            ds.save_as(path)
            damaged[k] = path.name
    assert len(damaged) == 2
    for _ in range(3):
        r = medselect.run("convert", tmp_path / "s", tmp_path / "out.npy", check=False)
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and "fewer than rows x columns" in r.stderr, r.stderr
        assert damaged[3] in r.stderr and damaged[8] not in r.stderr, (damaged, r.stderr)


def test_gantry_tilt_refused(tmp_path, medselect):
    _, img = volume((20, 20, 8))
    img.SetSpacing((1.0, 1.0, 2.0))
    write_series(img, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.7", tilt_mm=0.6)
    refused(medselect, tmp_path / "s", "gantry tilt")


def test_slices_of_different_sizes_refused(tmp_path, medselect):
    _, a = volume((20, 20, 4))
    write_series(a, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.8")
    _, b = volume((16, 20, 1))
    b.SetOrigin((0, 0, 8.0))
    write_series(b, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.8", names=["Z9"])
    refused(medselect, tmp_path / "s", "different sizes", "16 x 20", "20 x 20")


def test_two_slices_at_one_position_refused(tmp_path, medselect):
    _, a = volume((20, 20, 4))
    write_series(a, tmp_path / "s", "1.2.826.0.1.3680043.2.1125.1.9")
    shutil.copy(tmp_path / "s" / "IM0001", tmp_path / "s" / "echo2")
    ds = pydicom.dcmread(tmp_path / "s" / "echo2")
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.1.9.99"
    ds.save_as(tmp_path / "s" / "echo2")
    refused(medselect, tmp_path / "s", "two slices at one position")


def one_file(tmp_path):
    _, img = volume((16, 16, 1))
    write_series(img, tmp_path / "one", "1.2.826.0.1.3680043.2.1125.1.10", shuffle=False)
    return tmp_path / "one" / "IM0000"


def test_truncated_file_refused(tmp_path, medselect):
    data = one_file(tmp_path).read_bytes()
    for cut in [200, len(data) // 2, len(data) - 10]:
        (tmp_path / "cut.dcm").write_bytes(data[:cut])
        r = medselect.run("convert", tmp_path / "cut.dcm", tmp_path / "x.npy", check=False)
        assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (cut, r.stderr)


def test_wrong_lengths_refused(tmp_path, medselect):
    path = one_file(tmp_path)
    ds = pydicom.dcmread(path)
    ds.Rows = 64                     # the header promises more pixels than the element holds
    ds.save_as(tmp_path / "short.dcm")
    r = medselect.run("convert", tmp_path / "short.dcm", tmp_path / "x.npy", check=False)
    assert r.returncode != 0 and "fewer than rows x columns" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    # An element whose declared length runs past the end of the file.
    data = bytearray(path.read_bytes())
    at = data.find(b"\x08\x00\x70\x00")          # Manufacturer (0008,0070), explicit VR "LO" with a 2-byte length
    assert at > 0
    data[at + 6:at + 8] = (60000).to_bytes(2, "little")
    (tmp_path / "vr.dcm").write_bytes(bytes(data))
    r = medselect.run("convert", tmp_path / "vr.dcm", tmp_path / "x.npy", check=False)
    assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


def test_index_sites_from_scanners_without_identifiers(tmp_path, medselect):
    """A PACS-like export: two vendors, three series, two patients; the index makes one case per series, names sites
    by scanner, keeps the scanner facts, groups by a salted patient key, and holds no identifier anywhere."""
    import sqlite3
    _, a = oblique_image(seed=0)
    _, b = volume((24, 20, 6), seed=3)
    b.SetSpacing((1.0, 1.0, 3.0))
    root = tmp_path / "export"
    write_series(a, root / "study1" / "t1", "1.2.826.0.1.3680043.2.1125.2.1", patient="PAT-0042")
    write_series(b, root / "study1" / "t2", "1.2.826.0.1.3680043.2.1125.2.2", patient="PAT-0042", number=2, description="T2 COR")
    write_series(b, root / "study2" / "t2", "1.2.826.0.1.3680043.2.1125.2.3", patient="PAT-0077", manufacturer="GE MEDICAL SYSTEMS",
                 model="Signa", number=2, description="T2 COR")
    db = tmp_path / "index.sqlite"
    r = medselect.run("index", root, "--db", db, "--quiet")
    assert r.stdout.startswith("dicom: 3 samples (0 labeled) in 2 sites"), r.stdout
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, site, tags_json, scanner_json FROM samples ORDER BY id").fetchall()
    assert len(rows) == 3
    assert sorted({r[1] for r in rows}) == ["GE Signa", "SIEMENS Prisma"]
    import json
    tags = [json.loads(r[2]) for r in rows]
    keys = {t["series_uid"]: t["patient"] for t in tags}
    assert keys["1.2.826.0.1.3680043.2.1125.2.1"] == keys["1.2.826.0.1.3680043.2.1125.2.2"] != keys["1.2.826.0.1.3680043.2.1125.2.3"]
    # The index's geometry comes from the slices' headers alone: equal to SimpleITK's reading of each series.
    for path, uid, nx, ny, nz, affine in con.execute(
            "SELECT f.path, json_extract(s.tags_json, '$.series_uid'), f.nx, f.ny, f.nz, f.affine_json FROM files f JOIN samples s ON s.id = f.sample_id"):
        ref = sitk_series(path, uid)
        assert (nx, ny, nz) == ref.GetSize()
        assert np.allclose(np.array(json.loads(affine)).reshape(4, 4), sitk_affine_ras(ref), atol=1e-4)
    scanner = json.loads(rows[0][3])
    assert scanner["acquisitionMonth"] == "2019-03" and scanner["modality"] == "MR" and scanner["fieldStrength"] == 3
    # No identifier in any byte of the database: patient name, id, birth date, accession number, full dates.
    blob = b"".join(open(p, "rb").read() for p in [db] + [db.with_name(db.name + s) for s in ["-wal"] if db.with_name(db.name + s).exists()])
    for secret in [b"DOE", b"JANE", b"PAT-0042", b"PAT-0077", b"19700101", b"ACC778899", b"20190314"]:
        assert secret not in blob, secret
    # The salt is the index's own: indexing again keeps the keys; another index gives other keys.
    medselect.run("index", root, "--db", db, "--quiet")
    again = {json.loads(t)["series_uid"]: json.loads(t)["patient"] for (t,) in sqlite3.connect(db).execute("SELECT tags_json FROM samples")}
    assert again == keys
    medselect.run("index", root, "--db", tmp_path / "other.sqlite", "--quiet")
    other = {json.loads(t)["series_uid"]: json.loads(t)["patient"] for (t,) in sqlite3.connect(tmp_path / "other.sqlite").execute("SELECT tags_json FROM samples")}
    assert other.keys() == keys.keys() and all(other[k] != keys[k] for k in keys)
    # --site-from institution: one site; summary lists the sites.
    medselect.run("index", root, "--db", tmp_path / "inst.sqlite", "--site-from", "institution", "--quiet")
    assert {s for (s,) in sqlite3.connect(tmp_path / "inst.sqlite").execute("SELECT site FROM samples")} == {"General Hospital"}
    inst = medselect.run("summary", "--db", tmp_path / "inst.sqlite").stdout
    assert "SIEMENS Prisma 3T MR (2)" in inst and "GE Signa 3T MR (1)" in inst, inst
    summary = medselect.run("summary", "--db", db).stdout
    assert "SIEMENS Prisma" in summary and "GE Signa" in summary


def test_embed_predict_sites_take_a_dicom_tree(tmp_path, medselect):
    """Samples/dicom end to end: `embed` one row per series with the index's case ids, `predict` one label map per
    series on that series' grid (as SimpleITK reads it), `sites` the scanners compared; no identifier in any output."""
    import csv
    import json
    import sqlite3
    root = os.path.join(os.path.dirname(__file__), "..", "..", "Samples")
    dicom = os.path.join(root, "dicom")
    medselect.run("index", dicom, "--db", tmp_path / "i.sqlite", "--quiet")
    series = {i: (json.loads(images)[0], json.loads(tags)["series_uid"])
              for i, images, tags in sqlite3.connect(tmp_path / "i.sqlite").execute("SELECT id, images_json, tags_json FROM samples")}
    medselect.run("embed", "--data", dicom, "--method", "thumbnail", "--out", tmp_path / "e.npy")
    ids = [r["id"] for r in csv.DictReader(open(tmp_path / "e.ids.csv"))]
    assert sorted(ids) == sorted(series) and np.load(tmp_path / "e.npy").shape[0] == 7
    medselect.run("train", "--data", os.path.join(root, "prostate"), "--sites", "RUNMC", "--size", "32", "--epochs", "1", "--out", tmp_path / "model")
    medselect.run("predict", "--checkpoint", tmp_path / "model" / "checkpoint.safetensors", "--input", dicom, "--out", tmp_path / "pred")
    predicted = sorted(p for p in os.listdir(tmp_path / "pred") if p.endswith(".nii.gz"))
    assert predicted == sorted(i + ".nii.gz" for i in series)
    for case, (folder, uid) in series.items():
        label, ref = nib.load(tmp_path / "pred" / f"{case}.nii.gz"), sitk_series(folder, uid)
        assert label.shape[:3] == ref.GetSize()
        assert np.allclose(label.affine, sitk_affine_ras(ref), atol=1e-4)
    medselect.run("sites", "--data", dicom, "--source", "SIEMENS Prisma", "--permutations", "20", "--out", tmp_path / "sites")
    assert {r["site"] for r in csv.DictReader(open(tmp_path / "sites" / "sites.csv"))} >= {"Philips Ingenia"}
    for d in ("pred", "sites"):
        for name in os.listdir(tmp_path / d):
            data = open(tmp_path / d / name, "rb").read()
            for secret in [b"PHANTOM^P0", b"MRN-P0", b"19580704", b"ACC10"]:
                assert secret not in data, (name, secret)
