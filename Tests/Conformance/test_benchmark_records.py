"""Scripts/benchmark-records: a benchmark run carried to another machine as its items' records, without weights.

A tiny real experiment (phantom, thumbnail embeddings, one epoch) is exported, carried into a new folder with the same
phantom, and run again: nothing is computed; with a seed added, the carried source model is computed again (its
weights are needed) and the new fine-tuning with it, while the carried fine-tunings stay as they were.
"""
import filecmp
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDS = os.path.join(ROOT, "Scripts", "benchmark-records")


def records(*args, check=True):
    p = subprocess.run([sys.executable, RECORDS, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"benchmark-records {args} failed: {p.stderr}")
    return p


def make_run(medselect, out, seeds, *extra):
    b = out / "cxr"
    if not (b / "data").exists():
        medselect.run("phantom", "--benchmark", "cxr", "--preset", "graded", "--count", 6, "--size", 32, "--seed", 5,
                      "--out", b / "data", "--quiet")
    (b / "items").mkdir(parents=True, exist_ok=True)
    (b / "run").mkdir(exist_ok=True)
    if not (b / "run" / "items").exists():
        os.symlink("../items", b / "run" / "items")
    config = {"data": str(b / "data"), "source_sites": ["MCU"], "target_sites": ["CHN", "SiteC"],
              "encoder": {"method": "thumbnail"}, "strategies": ["random"], "budgets": ["2"], "seeds": seeds,
              "site_analysis": False, "train": {"size": 32, "epochs": 1, "source_epochs": 1, "batch": 2}}
    (out / "exp.json").write_text(json.dumps(config))
    return medselect.run("run", out / "exp.json", "--out", b / "run", *extra)


def item_folders(items):
    return sorted(f"{s}/{k}" for s in os.listdir(items) if os.path.isdir(items / s)
                  for k in os.listdir(items / s) if "." not in k)


def test_carried_records_resume_on_a_new_machine(medselect, tmp_path):
    first, second, archive = tmp_path / "first", tmp_path / "second", tmp_path / "records"
    make_run(medselect, first, [0])
    records("export", first, archive)
    assert sorted(os.listdir(archive)) == ["cxr.tar.gz"]
    # Deterministic: an unchanged run exports the same bytes.
    again = tmp_path / "again"
    records("export", first, again)
    assert filecmp.cmp(archive / "cxr.tar.gz", again / "cxr.tar.gz", shallow=False)

    records("import", second, archive)
    items = second / "cxr" / "items"
    assert item_folders(items) == item_folders(first / "cxr" / "items")
    source = next(items / f for f in item_folders(items) if f.startswith("source/"))
    assert not (source / "checkpoint.safetensors").exists()
    assert "checkpoint.safetensors" in json.loads((source / "carried.json").read_text())["left_behind"]
    assert (source / "cost.json").exists()
    # The same phantom written again (same seed): its digest matches; every item is carried, nothing is computed.
    p = make_run(medselect, second, [0])
    records("check", second)
    assert " 0 item(s) computed" in p.stdout + p.stderr
    assert not (source / "checkpoint.safetensors").exists()

    # A new seed needs the source model's weights: it is computed again (once), then the new items.
    fine = {f: (items / f / "validation_metrics.csv").read_bytes() for f in item_folders(items)
            if f.startswith("train/")}
    assert fine
    plan = make_run(medselect, second, [0, 1], "--plan-only").stdout
    states = {line.split("\t")[1].split("/")[0]: line.split("\t")[0] for line in plan.splitlines() if line.startswith("again")}
    assert states.get("source") == "again" and "carried without their weights, computed again" in plan, plan
    make_run(medselect, second, [0, 1])
    assert (source / "checkpoint.safetensors").exists() and not (source / "carried.json").exists()
    for f, data in fine.items():
        assert (items / f / "validation_metrics.csv").read_bytes() == data and (items / f / "carried.json").exists()


def test_import_refuses_other_phantom_data_and_never_overwrites(medselect, tmp_path):
    first, archive = tmp_path / "first", tmp_path / "records"
    make_run(medselect, first, [0])
    records("export", first, archive)
    # Importing into the run itself adds nothing and changes nothing.
    p = records("import", first, archive)
    assert "0 items carried in" in p.stderr
    source = next(first / "cxr" / "items" / f for f in item_folders(first / "cxr" / "items") if f.startswith("source/"))
    assert (source / "checkpoint.safetensors").exists() and not (source / "carried.json").exists()
    # Other phantom data (another seed) under the same name: refused with one line naming the folder.
    other = tmp_path / "other"
    medselect.run("phantom", "--benchmark", "cxr", "--preset", "graded", "--count", 6, "--size", 32, "--seed", 6,
                  "--out", other / "cxr" / "data", "--quiet")
    p = records("import", other, archive, check=False)
    assert p.returncode == 1 and "data.sha256 differs" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (other / "cxr" / "items").exists()
    # Imported before the phantom exists (as Scripts/benchmark does), then other data written: `check` refuses the
    # folder with one line, and passes for the phantom the items came from.
    late = tmp_path / "late"
    records("import", late, archive)
    medselect.run("phantom", "--benchmark", "cxr", "--preset", "graded", "--count", 6, "--size", 32, "--seed", 6,
                  "--out", late / "cxr" / "data", "--quiet")
    p = records("check", late, check=False)
    assert p.returncode == 1 and "data.sha256 differs" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert str(late / "cxr" / "data") in p.stderr
    os.rename(late / "cxr" / "data", tmp_path / "late-data-other")
    os.symlink(first / "cxr" / "data", late / "cxr" / "data")
    assert records("check", late).returncode == 0
    # Three imports at once (three Scripts/benchmark started together): every item once, complete, nothing left over.
    shared = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, RECORDS, "import", str(shared), str(archive)], stderr=subprocess.PIPE) for _ in range(3)]
    assert all(p.wait() == 0 for p in procs)
    assert item_folders(shared / "cxr" / "items") == item_folders(first / "cxr" / "items")
    leftovers = [f for _, dirs, files in os.walk(shared) for f in dirs + files if ".import-" in f or ".part-" in f]
    assert leftovers == []
    for f in item_folders(shared / "cxr" / "items"):
        kept = sorted(n for n in os.listdir(first / "cxr" / "items" / f) if not n.endswith((".safetensors", ".npy")))
        assert sorted(n for n in os.listdir(shared / "cxr" / "items" / f) if n != "carried.json") == kept


def test_damaged_archive_is_one_line(tmp_path):
    archive = tmp_path / "records"
    archive.mkdir()
    (archive / "cxr.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    p = records("import", tmp_path / "out", archive, check=False)
    assert p.returncode == 1 and "not a readable archive" in p.stderr and len(p.stderr.strip().splitlines()) == 1
