// Fuzz entry point for the readers: built by Scripts/fuzz with `-sanitize=fuzzer`, where libFuzzer supplies `main`
// and calls `LLVMFuzzerTestOneInput`. Without the sanitizer this target is a plain program that replays the files
// named on the command line (useful to reproduce a crash): `medselect-fuzz png crash-file`.
import Foundation
import MedFormats

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
    case "nifti", "nifti-gz", "metaimage":
        let ext = ["nifti": ".nii", "nifti-gz": ".nii.gz", "metaimage": ".mha"][fuzzTarget]!
        let path = scratch + ext
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        if fuzzTarget == "metaimage" { _ = try? MetaImageReader.read(path, options: options) }
        else { _ = try? NIfTIReader.read(path, options: options) }
    default:
        fatalError("MEDSELECT_FUZZ_TARGET must be png, npy, nifti, nifti-gz or metaimage")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    runOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
// Replay mode: medselect-fuzz FILE...
for file in CommandLine.arguments.dropFirst() {
    let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
    bytes.withUnsafeBytes { runOne($0) }
    print("ok \(file)")
}
#endif
