// Fuzz entry point for the readers and the configuration files: built by Scripts/fuzz with `-sanitize=fuzzer`, where libFuzzer supplies `main`
// and calls `LLVMFuzzerTestOneInput`. Without the sanitizer this target is a plain program that replays the files
// named on the command line (useful to reproduce a crash): `medselect-fuzz png crash-file`.
import Foundation
import MedData
import MedFormats
import MedPACS
import MedPipeline

let fuzzTarget: String = ProcessInfo.processInfo.environment["MEDSELECT_FUZZ_TARGET"] ?? "png"
let scratch = "/dev/shm/medselect-fuzz-\(getpid())"

func runOne(_ data: UnsafeRawBufferPointer) {
    let bytes = Array(data)
    let options = ReadOptions(maxBytes: 64 << 20)
    switch fuzzTarget {
    case "png":
        _ = try? PNGReader.decode(bytes, path: "fuzz.png", options: options)
    case "npy":
        _ = try? NPYReader.decode(bytes, path: "fuzz.npy", options: options)
    case "nifti", "nifti-gz", "metaimage", "nrrd", "dicom":
        let ext = ["nifti": ".nii", "nifti-gz": ".nii.gz", "metaimage": ".mha", "nrrd": ".nrrd", "dicom": ".dcm"][fuzzTarget]!
        let path = scratch + ext
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        switch fuzzTarget {
        case "metaimage": _ = try? MetaImageReader.read(path, options: options)
        case "nrrd": _ = try? NRRDReader.read(path, options: options)
        case "dicom": _ = try? DICOMReader.read(path, options: options)
        default: _ = try? NIfTIReader.read(path, options: options)
        }
    case "dicomweb":
        // A PACS's answers: the first line is the Content-Type, the rest the body; read as a WADO-RS multipart
        // answer and as QIDO-RS JSON (series and instances).
        let newline = bytes.firstIndex(of: 0x0A) ?? bytes.count
        let contentType = String(decoding: bytes[..<newline], as: UTF8.self)
        let body = Array(bytes[min(newline + 1, bytes.count)...])
        if let boundary = Multipart.boundary(contentType: contentType) { _ = try? Multipart.parts(body, boundary: boundary) }
        _ = try? QIDO.series(body)
        _ = try? QIDO.instances(body)
    case "config":
        // The JSON files a user writes or edits: an experiment configuration, phantom sites, an nnU-Net dataset.json,
        // a selection (medselect select, read by worklist and run) and a pick plan's record.
        let data = Data(bytes)
        _ = try? ExperimentConfig.load(data, path: scratch + "/experiment.json")
        _ = try? PhantomConfig.parse(data, path: "fuzz-sites.json")
        let folder = scratch + "-nnunet"
        try? FileManager.default.createDirectory(atPath: folder + "/imagesTr", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: folder + "/dataset.json", contents: data)
        _ = try? NNUNetRawAdapter.load(folder)
        _ = FileManager.default.createFile(atPath: scratch + ".json", contents: data)
        _ = try? Selection.read(scratch + ".json")
        _ = try? PickRecord.read(scratch + ".json")
    default:
        fatalError("MEDSELECT_FUZZ_TARGET must be png, npy, nifti, nifti-gz, metaimage, nrrd, dicom, dicomweb or config")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    runOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
// SwiftPM links executables with `main` defined as `medselect_fuzz_main`: hand control to libFuzzer's driver there.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("medselect_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzOne(data, size) }
}
#else
/// Replay mode: `medselect-fuzz FILE...` runs each file through the reader chosen by MEDSELECT_FUZZ_TARGET.
@main
struct FuzzReplay {
    static func main() {
        for file in CommandLine.arguments.dropFirst() {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            bytes.withUnsafeBytes { runOne($0) }
            print("ok \(file)")
        }
    }
}
#endif
