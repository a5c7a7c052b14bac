import ArgumentParser
import Foundation
import MedFormats
import MedImage
import MedMetrics
import MedSelection

/// Median wall time in milliseconds of `iterations` runs of `body`, after `warmup` untimed runs.
func medianMilliseconds(iterations: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> (median: Double, min: Double) {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<max(1, iterations) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    return (PhasedSteps.median(times), times.min()!)
}

/// Wall times of training steps made of phases (forward, backward, ...): each step calls `lap()` at the end of each
/// phase; `warmup` untimed steps run first (their laps are ignored).
struct PhasedSteps {
    /// Milliseconds per timed step, sorted.
    private(set) var times: [Double] = []
    private var laps: [[Double]] = []

    init(iterations: Int, warmup: Int, _ step: (_ lap: () -> Void) throws -> Void) rethrows {
        for _ in 0..<warmup { try step {} }
        for _ in 0..<Swift.max(1, iterations) {
            let start = Date()
            var t = start, phases: [Double] = []
            try step { let now = Date(); phases.append(now.timeIntervalSince(t) * 1000); t = now }
            times.append(Date().timeIntervalSince(start) * 1000)
            laps.append(phases)
        }
        times.sort()
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var median: Double { Self.median(times) }
    var min: Double { times[0] }
    var max: Double { times[times.count - 1] }
    /// Median milliseconds of phase `i` over the timed steps, to 0.1 ms.
    func phaseMedian(_ i: Int) -> Double { (Self.median(laps.map { $0[i] }) * 10).rounded() / 10 }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure MedSelect's speed (Scripts/bench-* compare it with the references in Scripts/reference).",
        subcommands: [BenchIO.self, BenchHSSL.self, BenchMAE.self, BenchOps.self, BenchSelect.self, BenchScale.self, BenchSites.self, BenchUNet.self]
    )
}

/// Times loading files to Float32 images (median of repeated loads after warm-up; files in the page cache).
struct BenchIO: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "Time loading images to Float32 (one JSON line per file with --json).",
        discussion: "Example: medselect bench io vol.nii.gz cxr.png --iters 10 --json"
    )

    @OptionGroup var limits: ReadLimitOptions

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
            var image: MedicalImage? = nil
            let (median, fastest) = try medianMilliseconds(iterations: iters, warmup: warmup) { image = try ImageIO.read(file) }
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            let img = image!
            let rawMB = Double(img.shape.count * img.info.storedType.byteCount / (img.info.storedType == .rgb24 ? 3 : 1)) / 1e6
            if json {
                let obj: [String: Any] = [
                    "bench": "load_f32", "lib": "medselect", "file": file, "shape": img.shape.dimensions,
                    "dtype": img.info.storedType.rawValue, "file_mb": Double(size) / 1e6,
                    "median_ms": (median * 100).rounded() / 100, "min_ms": (fastest * 100).rounded() / 100, "n": iters,
                ]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(String(format: "%@  %@  %@  median %.2f ms  min %.2f ms  (%.0f MB/s)", file, img.shape.description,
                             img.info.storedType.rawValue, median, fastest, rawMB / (median / 1000)))
            }
        }
    }
}

/// Times the distance transform, HD95 and 2-D resampling on files (Scripts/bench-ops writes them).
struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Time the distance transform and HD95 of a mask pair, and a 2-D resampling to 256x256.",
        discussion: "Example (after Scripts/bench-ops wrote the data): medselect bench ops --pred p.nii.gz --ref r.nii.gz --image i.npy --json"
    )
    @Option(help: "Predicted mask.") var pred: String
    @Option(help: "Reference mask.") var ref: String
    @Option(help: "2-D image to resample to 256x256.") var image: String
    @Option(help: "Timed runs per figure.") var iters: Int = 3
    @Flag(help: "One JSON object per figure.") var json = false

    func run() throws {
        let p = try ImageIO.read(pred), r = try ImageIO.read(ref), img = try ImageIO.read(image)
        func time(_ body: () throws -> Void) rethrows -> Double { try medianMilliseconds(iterations: iters, body).median }
        let figures: [(String, Double)] = [
            ("edt", time { _ = DistanceTransform.euclidean(p) }),
            ("hd95", try time { _ = try SegmentationMetrics.compute(prediction: p, reference: r, labels: [1]) }),
            ("resample2d", try time { _ = try img.resampled(toShape: [256, 256, 1]) }),
        ]
        for (name, ms) in figures {
            if json {
                print("{\"bench\": \"\(name)\", \"lib\": \"medselect\", \"median_ms\": \(String(format: "%.2f", ms))}")
            } else {
                print(String(format: "%-11@ %10.2f ms", name, ms))
            }
        }
    }
}

/// Times the selection building blocks on the data of Scripts/reference/select_baselines.py.
struct BenchSelect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "select",
        abstract: "Time k-center greedy, kNN density, t-SNE and k-means + silhouette (Scripts/bench-select).",
        discussion: "Example: medselect bench select --embeddings E.npy --points P.npy --json"
    )
    @Option(help: "N x D matrix (20000 x 256 in the reference).") var embeddings: String
    @Option(help: "N x 2 points for k-means and silhouette (5000 x 2).") var points: String
    @Option(help: "Workloads to run: kcenter,knn,tsne,kmeans.") var only: String = "kcenter,knn,tsne,kmeans"
    @Flag(help: "One JSON object per figure.") var json = false

    func run() throws {
        let e = try NPYReader.readMatrix(embeddings), p = try NPYReader.readMatrix(points)
        let pool = try Embeddings(values: e.values, count: e.rows, dimensions: e.columns)
        let pts = try Embeddings(values: p.values, count: p.rows, dimensions: p.columns)
        let work = Set(only.split(separator: ",").map(String.init))
        func report(_ name: String, _ seconds: Double, _ extra: [String: Any] = [:]) throws {
            var obj: [String: Any] = ["bench": name, "lib": "medselect", "seconds": (seconds * 1000).rounded() / 1000]
            for (k, v) in extra { obj[k] = v }
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "%-26@ %8.3f s", name, seconds))
            }
        }
        func time(_ body: () throws -> Void) rethrows -> Double {
            try medianMilliseconds(iterations: 1, warmup: 0, body).median / 1000   // single timed run, as the reference
        }
        if work.contains("kcenter") {
            _ = try CoreSet.select(pool, budget: 50, first: .index(0))   // warm-up, as the reference
            try report("kcenter_greedy", try time { _ = try CoreSet.select(pool, budget: 1000, first: .index(0)) })
        }
        if work.contains("knn") {
            try report("knn_density", try time {
                let nn = try NearestNeighbors.exact(queries: pool, targets: pool, k: 10, excludeSelf: true)
                _ = (0..<pool.count).map { i in 1 / ((0..<10).reduce(Float(0)) { $0 + nn.distances[i * 10 + $1] } / 10 + 1e-12) }
            })
        }
        if work.contains("tsne") {
            let sub = pool.rows(Array(0..<5000))
            try report("tsne_barnes_hut", try time { _ = try TSNE.embed(sub) })
        }
        if work.contains("kmeans") {
            var km = 0.0, sil = 0.0
            var best = (k: 0, s: -Double.infinity)
            for k in 2...10 {
                var model: KMeans.Model? = nil
                km += try time { model = try KMeans.fit(pts, k: k, restarts: 10, seed: 0) }
                var s = 0.0
                sil += try time { s = try Silhouette.score(pts, labels: model!.labels, sampleSize: Int.max) }
                if s > best.s { best = (k, s) }
            }
            try report("kmeans_silhouette_k2to10", km + sil, ["kmeans_seconds": km, "silhouette_seconds": sil, "best_k": best.k])
        }
    }
}
