"""`medselect index --dicomweb` against a real PACS: Debian's Orthanc with its DICOMweb plugin, started by this module
on the loopback address with a temporary configuration (basic authentication on), loaded with Samples/dicom, stopped
at the end. A small proxy in front of it speaks bearer tokens, records every request and can cut transfers short, so
that resumption is checked request by request. Scripts/test installs orthanc and orthanc-dicomweb; without them the
module is skipped."""
import glob
import http.server
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pydicom
import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SAMPLES = os.path.join(ROOT, "Samples", "dicom")
ORTHANC = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD, TOKEN = "annotator", "pw-7f3a9c", "tok-51d0e2b8"
SECRETS = [PASSWORD, TOKEN]
# The invented identifiers Scripts/make_dicom_samples.py writes.
IDENTIFIERS = [b"PHANTOM^P0", b"MRN-P0", b"19580704", b"ACC1", b"20240", b"REFERRER"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic():
    import base64
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if not (os.path.exists(ORTHANC) and os.path.exists(PLUGIN)):
        pytest.skip("Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb; Scripts/test does)")
    folder = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {
        "Name": "medselect-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "DicomPort": free_port(), "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "HttpBindAddress": "127.0.0.1", "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")
    proc = subprocess.Popen([ORTHANC, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(urllib.request.Request(base + "/system", headers={"Authorization": basic()}), timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            pytest.fail("Orthanc did not start: " + (folder / "orthanc.log").read_text()[-500:])
        files = sorted(p for p in glob.glob(os.path.join(SAMPLES, "**", "*"), recursive=True) if os.path.isfile(p))
        for p in files:
            req = urllib.request.Request(base + "/instances", data=open(p, "rb").read(), method="POST",
                                         headers={"Authorization": basic(), "Content-Type": "application/dicom"})
            urllib.request.urlopen(req, timeout=10).read()
        yield base, files
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


class Proxy(http.server.ThreadingHTTPServer):
    """Forwards GETs to Orthanc with its basic credentials, after checking the client's bearer token; records the
    paths it served whole; with `cut` set, sends only half of every instance's body and closes the connection."""
    daemon_threads = True

    def __init__(self, upstream):
        self.upstream = upstream
        self.served, self.cut = [], False
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/dicom-web"

    def instances(self):
        with self.lock:
            return [p.split("?")[0].rsplit("/", 1)[1] for p in self.served if "/instances/" in p]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = {"Authorization": basic()}
        if self.headers.get("Accept"):
            headers["Accept"] = self.headers["Accept"]
        try:
            r = urllib.request.urlopen(urllib.request.Request(self.server.upstream + self.path, headers=headers), timeout=30)
            status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        cut = self.server.cut and "/instances/" in self.path
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
        with self.server.lock:
            self.server.served.append(self.path)


def run(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MEDSELECT_DICOMWEB_")}
    e.update(env or {})
    return subprocess.run([os.environ["MEDSELECT_BIN"], *map(str, args)], capture_output=True, text=True, env=e)


def creds():
    return {"MEDSELECT_DICOMWEB_USER": USER, "MEDSELECT_DICOMWEB_PASSWORD": PASSWORD}


def cases(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT site, tags_json, scanner_json FROM samples").fetchall()
    return sorted((site, json.loads(tags)["series_uid"], scanner) for site, tags, scanner in rows)


def test_index_from_orthanc_equals_local_files(orthanc, tmp_path):
    """Every series of the PACS retrieved whole (the files byte for byte as loaded), indexed exactly as the same files
    read from disk, with no identifier in the index; a second run fetches nothing."""
    base, files = orthanc
    cache, db = tmp_path / "cache", tmp_path / "pacs.sqlite"
    r = run("index", "--dicomweb", base + "/dicom-web", "--cache", cache, "--db", db, env=creds())
    assert r.returncode == 0, r.stderr
    assert "7 series found: 0 already in" in r.stderr and "205 files" in r.stderr, r.stderr
    fetched = {os.path.basename(p)[:-4]: open(p, "rb").read() for p in glob.glob(str(cache / "*" / "*" / "*.dcm"))}
    originals = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): open(p, "rb").read() for p in files}
    assert fetched == originals
    local = tmp_path / "local.sqlite"
    assert run("index", SAMPLES, "--db", local).returncode == 0
    assert cases(db) == cases(local) and len(cases(db)) == 7
    blob = open(db, "rb").read()
    for secret in IDENTIFIERS:
        assert secret not in blob, secret
    again = run("index", "--dicomweb", base + "/dicom-web", "--cache", cache, "--db", db, env=creds())
    assert again.returncode == 0 and "7 already in" in again.stderr and " 0 files" in again.stderr, again.stderr
    for text in (r.stdout + r.stderr, again.stdout + again.stderr):
        assert not any(s in text for s in SECRETS)
        assert not any(i.decode() in text for i in IDENTIFIERS)


def test_search_filters(orthanc, tmp_path):
    base, _ = orthanc
    r = run("index", "--dicomweb", base + "/dicom-web", "--query", "Manufacturer=SIEMENS", "--cache", tmp_path / "c", "--db", tmp_path / "s.sqlite", env=creds())
    assert r.returncode == 0, r.stderr
    assert {c[0] for c in cases(tmp_path / "s.sqlite")} == {"SIEMENS Prisma"} and len(cases(tmp_path / "s.sqlite")) == 4
    none = run("index", "--dicomweb", base + "/dicom-web", "--query", "Modality=CT", "--cache", tmp_path / "c2", "--db", tmp_path / "n.sqlite", env=creds())
    assert none.returncode != 0 and "found no series" in none.stderr
    bad = run("index", "--dicomweb", base + "/dicom-web", "--query", "limit=3", "--db", tmp_path / "b.sqlite", env=creds())
    assert bad.returncode != 0 and "set by medselect" in bad.stderr


def test_interrupted_retrieval_resumes(orthanc, tmp_path):
    """The connection breaks in the middle of the run: medselect stops with one line, only whole files are left, and
    the next run fetches exactly the instances still missing (none twice)."""
    base, files = orthanc
    proxy = Proxy(base)
    cache, db = tmp_path / "cache", tmp_path / "r.sqlite"
    token = {"MEDSELECT_DICOMWEB_TOKEN": TOKEN}

    def cut_later():
        while len(proxy.instances()) < 60:
            time.sleep(0.005)
        proxy.cut = True

    t = threading.Thread(target=cut_later)
    t.start()
    first = run("index", "--dicomweb", proxy.url, "--cache", cache, "--db", db, env=token)
    t.join()
    assert first.returncode != 0
    assert first.stderr.strip().splitlines()[-1].startswith("error: http://127.0.0.1:"), first.stderr
    assert not os.path.exists(db)
    before = proxy.instances()
    assert 60 <= len(before) < 205
    on_disk = glob.glob(str(cache / "*" / "*" / "*.dcm"))
    assert sorted(os.path.basename(p)[:-4] for p in on_disk) == sorted(before)
    for p in on_disk:
        pydicom.dcmread(p)   # whole files only
    assert not [p for p in glob.glob(str(cache / "**" / ".tmp-*"), recursive=True)]
    proxy.cut = False
    second = run("index", "--dicomweb", proxy.url, "--cache", cache, "--db", db, env=token)
    assert second.returncode == 0, second.stderr
    after = proxy.instances()[len(before):]
    assert not set(after) & set(before)
    assert len(before) + len(after) == 205 and len(set(after)) == len(after)
    assert len(cases(db)) == 7
    proxy.shutdown()


def test_credentials_from_the_environment_only(orthanc, tmp_path):
    base, _ = orthanc
    url = base + "/dicom-web"
    missing = run("index", "--dicomweb", url, "--cache", tmp_path / "c", "--db", tmp_path / "a.sqlite")
    assert missing.returncode != 0 and "HTTP 401" in missing.stderr and "MEDSELECT_DICOMWEB_USER" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) <= 2 and "Fatal error" not in missing.stderr
    wrong = run("index", "--dicomweb", url, "--cache", tmp_path / "c", "--db", tmp_path / "a.sqlite",
                env={"MEDSELECT_DICOMWEB_USER": USER, "MEDSELECT_DICOMWEB_PASSWORD": "nope"})
    assert wrong.returncode != 0 and "refused the credentials" in wrong.stderr
    in_url = run("index", "--dicomweb", url.replace("http://", f"http://{USER}:{PASSWORD}@"), "--db", tmp_path / "a.sqlite")
    assert in_url.returncode != 0 and "do not belong in the URL" in in_url.stderr and PASSWORD not in in_url.stderr
    proxy = Proxy(base)
    bearer = run("index", "--dicomweb", proxy.url, "--query", "Manufacturer=Philips*", "--cache", tmp_path / "b", "--db", tmp_path / "b.sqlite",
                 env={"MEDSELECT_DICOMWEB_TOKEN": TOKEN})
    assert bearer.returncode == 0, bearer.stderr
    assert len(cases(tmp_path / "b.sqlite")) == 3 and TOKEN not in bearer.stdout + bearer.stderr
    proxy.shutdown()


def test_pick_takes_the_pacs_url(orthanc, tmp_path):
    """`pick --target URL`: the PACS's series become the target (a case per series, scanners as sites), the worklist
    holds NIfTI copies of the voxels (equal to the series read from disk) and no identifier anywhere in the plan."""
    base, _ = orthanc
    out, cache = tmp_path / "plan", tmp_path / "cache"
    r = run("pick", "--target", base + "/dicom-web", "--cache", cache, "--source-data", os.path.join(ROOT, "Samples", "prostate"),
            "--source-sites", "RUNMC,BMC", "--budget", "2", "--size", "32", "--source-epochs", "1", "--encoder-epochs", "1",
            "--encoder-size", "16", "--threads", "1", "--out", out, env=creds())
    assert r.returncode == 0, r.stderr
    import csv
    rows = list(csv.DictReader(open(out / "worklist.csv")))
    assert len(rows) == 2 and {row["site"] for row in rows} <= {"SIEMENS Prisma", "Philips Ingenia"}
    local = tmp_path / "local.sqlite"
    run("index", SAMPLES, "--db", local)
    series = {i: (json.loads(images)[0], json.loads(tags)["series_uid"])
              for i, images, tags in sqlite3.connect(local).execute("SELECT id, images_json, tags_json FROM samples")}
    import nibabel as nib
    import numpy as np
    for row in rows:
        image = out / "worklist" / row["image"]
        assert image.name.endswith("_0000.nii.gz")
        # The same series read from Samples/dicom: the worklist holds exactly its voxels and geometry.
        folder, uid = series[row["case"]]
        ref = tmp_path / f"{row['case']}.nii.gz"
        assert run("convert", folder, ref, "--series", uid).returncode == 0
        ours, theirs = nib.load(image), nib.load(ref)
        assert np.array_equal(ours.get_fdata(), theirs.get_fdata()) and np.allclose(ours.affine, theirs.affine)
    for path in glob.glob(str(out / "**" / "*"), recursive=True):
        if os.path.isfile(path):
            data = open(path, "rb").read()
            for secret in IDENTIFIERS:
                assert secret not in data, (path, secret)
    assert not any(s in r.stdout + r.stderr for s in SECRETS)
