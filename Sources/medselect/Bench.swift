import ArgumentParser
import Foundation
import MedFormats
import MedImage

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure MedSelect's speed (compare against ../shared/bench with Scripts/bench).",
        subcommands: [BenchIO.self]
    )
}

/// Times loading files to Float32 images (median of repeated loads after warm-up; files in the page cache).
struct BenchIO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "Time loading images to Float32 (one JSON line per file with --json).",
        discussion: "Example: medselect bench io vol.nii.gz cxr.png --iters 10 --json"
    )

    @Argument(help: "Files to load.") var files: [String]
    @Option(help: "Timed loads per file.") var iters: Int = 10
    @Option(help: "Untimed loads first.") var warmup: Int = 2
    @Flag(help: "One JSON object per file.") var json = false

    func validate() throws {
        if iters < 1 { throw ValidationError("--iters must be at least 1") }
        if files.isEmpty { throw ValidationError("give at least one file") }
    }

    func run() throws {
        for file in files {
            for _ in 0..<warmup { _ = try ImageIO.read(file) }
            var times: [Double] = []
            var image: MedicalImage? = nil
            for _ in 0..<iters {
                let t0 = DispatchTime.now().uptimeNanoseconds
                image = try ImageIO.read(file)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            times.sort()
            let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            let img = image!
            let rawMB = Double(img.shape.count * img.info.storedType.byteCount / (img.info.storedType == .rgb24 ? 3 : 1)) / 1e6
            if json {
                let obj: [String: Any] = [
                    "bench": "load_f32", "lib": "medselect", "file": file, "shape": img.shape.dimensions,
                    "dtype": img.info.storedType.rawValue, "file_mb": Double(size) / 1e6,
                    "median_ms": (median * 100).rounded() / 100, "min_ms": (times[0] * 100).rounded() / 100, "n": iters,
                ]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(String(format: "%@  %@  %@  median %.2f ms  min %.2f ms  (%.0f MB/s)", file, img.shape.description,
                             img.info.storedType.rawValue, median, times[0], rawMB / (median / 1000)))
            }
        }
    }
}
