"""Writes Samples/dicom (a small PACS export) and Samples/slicer (a 3D Slicer segmentation) from the prostate phantoms
in Samples/prostate, with SimpleITK's DICOM writer (GDCM) and pynrrd. Called by Scripts/make-samples; same bytes every
time (UIDs derived from names, dates fixed).

Samples/dicom/<patient>/<study>/<series>/IM0001... : six patients, one study each; three from a "SIEMENS Prisma" 3 T
(the RUNMC phantoms, stored uncompressed, explicit VR little endian) and three from a "Philips Ingenia" 1.5 T (the
BIDMC phantoms, lossless JPEG); the first patient's study has a second series, the same volume stored as coronal
slices. Patient names, ids, birth dates and accession numbers are invented, so that tests can check that none of them
reaches an index, report or export. Samples/slicer/P01_T2AX.seg.nrrd is the first patient's prostate mask as a Slicer
segmentation on that series' grid (one segment, layer 0, label value 1, LPS space as Slicer writes it)."""
import hashlib
import os
import shutil
import sys

import nrrd
import numpy as np
import SimpleITK as sitk

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SAMPLES = os.path.join(ROOT, "Samples")


def uid(name):
    """A DICOM UID under the 2.25 (UUID-derived) root, fixed by `name`."""
    return "2.25." + str(int(hashlib.sha256(name.encode()).hexdigest()[:30], 16))


SCANNERS = {
    "RUNMC": dict(manufacturer="SIEMENS", model="Prisma", field="3", station="MRC35112", software="syngo MR XA30",
                  institution="Riverside University Hospital", serial="167012", compress=None),
    "BIDMC": dict(manufacturer="Philips Medical Systems", model="Ingenia", field="1.5", station="PHILIPS-7KQ2",
                  software="5.7.1", institution="Bayside Medical Center", serial="42215", compress="JPEG"),
}


def write_series(img, folder, *, patient, study, series, number, description, scanner, month):
    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    if scanner["compress"]:
        writer.UseCompressionOn()
        writer.SetCompressor(scanner["compress"])
    d = img.GetDirection()
    series_uid = uid(f"{study}/{series}")
    date = f"2024{month:02d}15"
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        origin = img.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0008": "ORIGINAL\\PRIMARY\\M\\NORM", "0008|0060": "MR", "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0070": scanner["manufacturer"], "0008|1090": scanner["model"], "0018|0087": scanner["field"],
            "0008|1010": scanner["station"], "0008|0080": scanner["institution"], "0018|1000": scanner["serial"],
            "0018|1020": scanner["software"], "0018|0015": "PROSTATE", "0018|0020": "SE", "0018|0023": "2D",
            "0008|0012": date, "0008|0013": "093000", "0008|0020": date, "0008|0021": date, "0008|0022": date,
            "0008|0023": date, "0008|0030": "091500", "0008|0031": "092000", "0008|0032": "092000", "0008|0033": "093000",
            "0010|0010": f"PHANTOM^{patient}", "0010|0020": f"MRN-{patient}-7731", "0010|0030": "19580704",
            "0010|0040": "M", "0008|0050": f"ACC{number}{patient[1:]}0419", "0008|0090": "REFERRER^DOCTOR",
            "0020|000d": uid(study), "0020|0010": "1", "0020|000e": series_uid, "0008|103e": description,
            "0008|1030": "MRI PROSTATE", "0020|0011": str(number), "0020|0013": str(k + 1),
            "0008|0018": uid(f"{study}/{series}/{k + 1}"),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0020|0032": "\\".join(f"{v:.4f}" for v in origin),
            "0018|0050": f"{img.GetSpacing()[2]:.4f}", "0028|0030": f"{img.GetSpacing()[1]:.4f}\\{img.GetSpacing()[0]:.4f}",
        }
        for key, value in tags.items():
            s.SetMetaData(key, value)
        writer.SetFileName(os.path.join(folder, f"IM{k + 1:04d}"))
        writer.Execute(s)
    return series_uid


def main():
    out = os.path.join(SAMPLES, "dicom")
    slicer = os.path.join(SAMPLES, "slicer")
    for folder in (out, slicer):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(slicer)
    patient = 0
    for site in ("RUNMC", "BIDMC"):
        for case in range(3):
            patient += 1
            p = f"P{patient:02d}"
            img = sitk.ReadImage(os.path.join(SAMPLES, "prostate", site, f"Case{case:02d}.nii.gz"))
            study = f"{p}/MRI PROSTATE"
            month = 2 + patient
            write_series(img, os.path.join(out, p, "MR_PROSTATE", "T2_AX"), patient=p, study=study, series="T2AX",
                         number=1, description="T2 TSE AX", scanner=SCANNERS[site], month=month)
            if patient == 1:
                coronal = sitk.DICOMOrient(img, "LSP")   # the same voxels stored as coronal slices
                write_series(coronal, os.path.join(out, p, "MR_PROSTATE", "T2_COR"), patient=p, study=study,
                             series="T2COR", number=2, description="T2 TSE COR", scanner=SCANNERS[site], month=month)
                # The mask as 3D Slicer saves a segmentation: LPS space, the series' grid, one segment in layer 0.
                label = sitk.ReadImage(os.path.join(SAMPLES, "prostate", site, f"Case{case:02d}_segmentation.nii.gz"))
                arr = sitk.GetArrayFromImage(label).transpose(2, 1, 0).astype(np.uint8)
                d = np.array(label.GetDirection()).reshape(3, 3)
                header = {
                    "type": "unsigned char", "dimension": 3, "space": "left-posterior-superior",
                    "space directions": (d * np.array(label.GetSpacing())).T.tolist(),
                    "space origin": list(label.GetOrigin()), "kinds": ["domain", "domain", "domain"],
                    "encoding": "gzip",
                    "Segment0_ID": "Segment_1", "Segment0_Name": "prostate", "Segment0_LabelValue": "1",
                    "Segment0_Layer": "0", "Segment0_Color": "0.862745 0.4 0.258824",
                    "Segment0_ColorAutoGenerated": "0", "Segment0_Extent": " ".join(
                        f"{lo} {hi}" for lo, hi in zip(np.argwhere(arr).min(0), np.argwhere(arr).max(0))),
                    "Segment0_NameAutoGenerated": "0", "Segment0_Tags": "TerminologyEntry:Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure~SCT^41216001^Prostate~^^~Anatomic codes - DICOM master list~^^~^^|",
                    "Segmentation_MasterRepresentation": "Binary labelmap",
                    "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
                    "Segmentation_ReferenceImageExtentOffset": "0 0 0",
                }
                nrrd.write(os.path.join(slicer, "P01_T2AX.seg.nrrd"), arr, header, index_order="F",
                           custom_field_map={k: "string" for k in header if k.startswith(("Segment", "Segmentation"))})
    print(f"wrote {out} and {slicer}", file=sys.stderr)


if __name__ == "__main__":
    main()
