import Foundation
import MedCompute
import MedFormats
import MedImage
import Synchronization
import MedFoundation

/// Training arrays prepared once: each sample resampled and normalised, stored as `.npy` (image float32, label uint8
/// label map) in a folder named by a hash of the parameters, with `manifest.json` listing the entries and the source
/// files' sizes and modification times. Preparing again reuses every entry whose sources did not change, so training
/// runs never re-decode large PNGs. Arrays follow the project's `.npy` contract (NiBabel order for volumes, Pillow
/// order for PNG-derived 2-D images).
public struct PreprocessCache: Sendable {
    public struct Parameters: Sendable, Codable, Equatable {
        /// Target spacing in mm (nil: keep).
        public var spacing: [Double]?
        /// Target shape (nil: keep); applied after spacing.
        public var shape: [Int]?
        /// "zscore", "minmax", or "none".
        public var normalize: String
        /// Clip to these intensity percentiles first (e.g. [0.5, 99.5]).
        public var clipPercentiles: [Double]?
        public init(spacing: [Double]? = nil, shape: [Int]? = nil, normalize: String = "zscore", clipPercentiles: [Double]? = nil) {
            self.spacing = spacing; self.shape = shape; self.normalize = normalize; self.clipPercentiles = clipPercentiles
        }
        /// A short stable key (first 16 hex digits of the SHA-256 of the sorted-key JSON).
        public var key: String {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            return String(SHA256.hex(of: Array((try? enc.encode(self)) ?? Data())).prefix(16))
        }
    }

    public struct Entry: Sendable, Codable, Equatable {
        public var id: String
        public var site: String
        public var image: String
        public var label: String?
        public var shape: [Int]
        public var spacing: [Double]
        /// Source file -> "size:mtime".
        public var sources: [String: String]
    }

    public let root: String
    public let parameters: Parameters
    public var folder: String { root + "/" + parameters.key }

    public init(root: String, parameters: Parameters) throws {
        guard ["zscore", "minmax", "none"].contains(parameters.normalize) else {
            throw DataError.badConfiguration(path: "--normalize", reason: "use zscore, minmax or none")
        }
        self.root = root
        self.parameters = parameters
    }

    static func stamp(_ path: String) -> String {
        let a = try? FileManager.default.attributesOfItem(atPath: path)
        return "\((a?[.size] as? NSNumber)?.intValue ?? -1):\((a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)"
    }

    /// The entries of the manifest (empty when nothing is cached yet).
    public func entries() -> [Entry] {
        guard let data = FileManager.default.contents(atPath: folder + "/manifest.json"),
              let m = try? JSONDecoder().decode(Manifest.self, from: data) else { return [] }
        return m.entries
    }

    struct Manifest: Codable { var parameters: Parameters; var entries: [Entry] }

    /// Prepares every sample (reusing unchanged entries); returns the entries and how many were computed.
    @discardableResult
    public func prepare(_ samples: [Sample], progress: (@Sendable (String) -> Void)? = nil) throws -> (entries: [Entry], computed: Int) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let old = Dictionary(entries().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let results = Mutex([Int: Entry]())
        let failure = Mutex<Error?>(nil)
        let computed = Atomic(0)
        parallelFor(samples.count) { i in
            let s = samples[i]
            let sources = Dictionary(uniqueKeysWithValues: (s.images + s.labels).map { ($0, Self.stamp($0)) })
            if let e = old[s.id], e.sources == sources, FileManager.default.fileExists(atPath: folder + "/" + e.image) {
                results.withLock { $0[i] = e }
                return
            }
            do {
                var image = try s.loadImage()
                var label = try s.loadLabel()
                if let sp = parameters.spacing {
                    image = try image.resampled(toSpacing: sp)
                    if let l = label { label = try l.resampled(onto: image) }
                }
                if let shape = parameters.shape {
                    image = try image.resampled(toShape: shape)
                    if let l = label { label = try l.resampled(onto: image) }
                }
                if let c = parameters.clipPercentiles, c.count == 2 { image = image.clipped(toPercentiles: c[0], c[1]) }
                switch parameters.normalize {
                case "zscore": image = try image.zScored()
                case "minmax": image = image.minMaxScaled()
                default: break
                }
                let name = DatasetExport.caseName(s)
                try NPYWriter.write(ImageIO.array(from: image), to: folder + "/\(name)_image.npy")
                var labelFile: String? = nil
                if var l = label {
                    l.info.storedType = .uint8
                    try NPYWriter.write(ImageIO.array(from: l), to: folder + "/\(name)_label.npy")
                    labelFile = "\(name)_label.npy"
                }
                let e = Entry(id: s.id, site: s.site, image: "\(name)_image.npy", label: labelFile, shape: image.shape.dimensions,
                              spacing: image.spacing, sources: sources)
                results.withLock { $0[i] = e }
                let n = computed.add(1, ordering: .relaxed).newValue
                if n % 50 == 0 { progress?("prepared \(n) samples") }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let all = results.withLock { $0 }
        let entries = (0..<samples.count).compactMap { all[$0] }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try enc.encode(Manifest(parameters: parameters, entries: entries))), to: folder + "/manifest.json")
        return (entries, computed.load(ordering: .relaxed))
    }
}
