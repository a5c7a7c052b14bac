import Foundation
import MedCompute
import MedFormats
import MedImage
import Synchronization
import MedFoundation

/// A site with every parameter decided (defaults filled in, `--size` applied).
struct ResolvedSite: Sendable {
    var name: String
    var distance: Double
    var count: Int
    var size: [Int]
    var spacing: [Double]
    var gamma, contrast, offset, noise, blur, bias, rotation, translation: Double
    var noiseType: String
    var endorectalCoil: Bool
    var colorBalance: [Double]
    var layout: String
    var prefix: String
    var maskedFraction: Double
    var modes: [(name: String, frequency: Double)]
}

extension PhantomSite {
    /// Fills in the benchmark's defaults; `size` (the long side in pixels) rescales the spacing so the field of view
    /// is kept; `count` is the default case count.
    func resolved(for benchmark: PhantomBenchmark, count defaultCount: Int, size: Int?) -> ResolvedSite {
        var sz: [Int], sp: [Double]
        switch benchmark {
        case .cxr: sz = self.size ?? [1024, 1024]; sp = spacing ?? [0.35, 0.35]
        case .fundus: sz = self.size ?? [640, 640]; sp = spacing ?? [0.015, 0.015]
        case .prostate: sz = self.size ?? [320, 320, 24]; sp = spacing ?? [0.6, 0.6, 3.6]
        }
        if let s = size {
            let longSide = max(sz[0], sz[1])
            let f = Double(longSide) / Double(s)
            let w = max(8, Int((Double(sz[0]) / f).rounded())), h = max(8, Int((Double(sz[1]) / f).rounded()))
            sp[0] *= Double(sz[0]) / Double(w); sp[1] *= Double(sz[1]) / Double(h)
            sz[0] = w; sz[1] = h
        }
        let layoutDefault = benchmark == .cxr ? "montgomery" : benchmark == .prostate ? "_segmentation" : "riga"
        let lay = layout ?? layoutDefault
        return ResolvedSite(
            name: name, distance: distance, count: count ?? defaultCount, size: sz, spacing: sp,
            gamma: gamma ?? 1, contrast: contrast ?? 1, offset: offset ?? 0, noise: noise ?? 0.01, blur: blur ?? 0,
            bias: bias ?? 0, rotation: rotation ?? 0, translation: translation ?? 0,
            noiseType: noiseType ?? (benchmark == .prostate ? "rician" : "gaussian"), endorectalCoil: endorectalCoil ?? false,
            colorBalance: colorBalance ?? [1, 1, 1], layout: lay,
            prefix: prefix ?? (lay == "shenzhen" ? "CHNCXR" : "MCUCXR"),
            maskedFraction: maskedFraction ?? 1, modes: modeFrequencies(for: benchmark))
    }
}

/// Writes a phantom benchmark: every site's cases in the real dataset's layout, `phantom_cases.csv` (one row per
/// case: site, known distance, mode, files and the generator's own measurements), `phantom_sites.json` (the resolved
/// configuration and seed) and `contact_sheet.png` (the first cases of every site with their mask outlines).
public struct PhantomGenerator: Sendable {
    public var config: PhantomConfig
    public var seed: UInt64
    /// Default cases per site (a site's own `count` wins).
    public var count: Int
    /// Long side in pixels (nil: each site's native size).
    public var size: Int?

    public init(config: PhantomConfig, seed: UInt64, count: Int = 20, size: Int? = nil) {
        self.config = config
        self.seed = seed
        self.count = count
        self.size = size
    }

    /// One written case.
    public struct Case: Sendable {
        public var site: String
        public var siteDistance: Double
        public var id: String
        public var mode: String
        /// Paths relative to the output folder.
        public var image: String
        public var masks: [String]
        public var facts: [String: String]
    }

    /// Generates everything under `folder`; `progress` receives a line after every case (site, count, rate, time left
    /// in the site).
    @discardableResult
    public func write(to folder: String, progress: (@Sendable (String) -> Void)? = nil) throws -> [Case] {
        try config.validate()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var all: [Case] = []
        var sheet: [[Thumbnail]] = []
        for (s, site) in config.sites.enumerated() {
            let r = site.resolved(for: config.benchmark, count: count, size: size)
            let modes = Self.assignModes(r, seed: seed, site: s)
            let start = Date()
            let done = Mutex(0)
            let results = Mutex([Int: Result<(Case, Thumbnail?), Error>]())
            let benchmark = config.benchmark, seed = self.seed
            parallelFor(r.count) { c in
                let outcome = Result { try Self.writeCase(benchmark, r, index: c, mode: modes[c], seed: seed, site: s, folder: folder) }
                results.withLock { $0[c] = outcome }
                let n = done.withLock { $0 += 1; return $0 }
                if let progress {
                    let rate = Double(n) / max(1e-9, Date().timeIntervalSince(start))
                    progress(String(format: "site %d/%d %@: %d/%d cases (%.1f/s, %.0f s left)", s + 1, config.sites.count, r.name, n, r.count, rate,
                                    Double(r.count - n) / max(rate, 1e-9)))
                }
            }
            var thumbs: [Thumbnail] = []
            for c in 0..<r.count {
                let (cs, thumb) = try results.withLock { $0[c]! }.get()
                all.append(cs)
                if let thumb { thumbs.append(thumb) }
            }
            sheet.append(thumbs)
            if benchmark == .fundus { try Self.writeRIGASplits(all.filter { $0.site == r.name }, site: r, seed: seed, index: s, folder: folder) }
        }
        try Self.writeTable(all, benchmark: config.benchmark, to: folder + "/phantom_cases.csv")
        try Self.writeSites(config: config, seed: seed, count: count, size: size, to: folder + "/phantom_sites.json")
        try ContactSheet.write(rows: sheet, labels: config.sites.map(\.name), to: folder + "/contact_sheet.png")
        return all
    }

    /// Mode per case: counts by largest remainder of the frequencies (so proportions are exact to one case), then
    /// shuffled with the site's stream.
    static func assignModes(_ r: ResolvedSite, seed: UInt64, site: Int) -> [String] {
        let exact = r.modes.map { $0.frequency * Double(r.count) }
        var counts = exact.map { Int($0.rounded(.down)) }
        let order = exact.indices.sorted { (exact[$0] - Double(counts[$0]), -$0) > (exact[$1] - Double(counts[$1]), -$1) }
        var left = r.count - counts.reduce(0, +)
        for i in order where left > 0 { counts[i] += 1; left -= 1 }
        var modes: [String] = []
        for (i, m) in r.modes.enumerated() { modes += Array(repeating: m.name, count: counts[i]) }
        var rng = PhantomRandom(seed: seed, streams: [site, -1])
        modes.shuffle(using: &rng)
        return modes
    }

    static func writeCase(_ benchmark: PhantomBenchmark, _ r: ResolvedSite, index c: Int, mode: String, seed: UInt64, site s: Int,
                          folder: String) throws -> (Case, Thumbnail?) {
        let streams = [s, c]
        var choice = PhantomRandom(seed: seed, streams: [s, c, -2])
        let dir = folder + "/" + r.name
        let fm = FileManager.default
        switch benchmark {
        case .cxr:
            let out = ChestXRayPhantom.render(site: r, mode: mode, seed: seed, streams: streams)
            let tb = choice.uniform() < (mode == "effusion" ? 0.7 : 0.3) ? 1 : 0
            let name = String(format: "%@_%04d_%d", r.prefix, c + 1, tb)
            let (w, h) = (r.size[0], r.size[1])
            let spacing = [r.spacing[0], r.spacing[1]]
            // Quantise straight to bytes (16-bit host order; masks 0 / 255) and write in the fast PNG mode.
            var pixels = [UInt8](repeating: 0, count: 2 * w * h)
            pixels.withUnsafeMutableBytes { raw in
                let p16 = raw.bindMemory(to: UInt16.self)
                for k in 0..<(w * h) { p16[k] = UInt16(min(65535, max(0, out.image.data[k] * 65535 + 0.5))) }
            }
            try fm.createDirectory(atPath: dir + "/CXR_png", withIntermediateDirectories: true)
            try PNGWriter.write(interleaved: pixels, width: w, height: h, channels: 1, bitDepth: 16, spacing: spacing,
                                to: "\(dir)/CXR_png/\(name).png", compressionLevel: 1)
            var masks: [String] = []
            let masked = choice.uniform() < r.maskedFraction
            func writeMask(_ p: Plane, _ path: String) throws {
                try PNGWriter.write(interleaved: p.data.map { $0 > 0 ? 255 : 0 }, width: w, height: h, channels: 1, bitDepth: 8,
                                    spacing: spacing, to: path, compressionLevel: 1)
            }
            var both = out.leftLung
            for k in 0..<both.data.count { both.data[k] = max(both.data[k], out.rightLung.data[k]) }
            if r.layout == "montgomery" {
                for (sub, plane) in [("leftMask", out.leftLung), ("rightMask", out.rightLung)] {
                    try fm.createDirectory(atPath: "\(dir)/ManualMask/\(sub)", withIntermediateDirectories: true)
                    try writeMask(plane, "\(dir)/ManualMask/\(sub)/\(name).png")
                    masks.append("\(r.name)/ManualMask/\(sub)/\(name).png")
                }
            } else if masked {
                try fm.createDirectory(atPath: dir + "/mask", withIntermediateDirectories: true)
                try writeMask(both, "\(dir)/mask/\(name)_mask.png")
                masks.append("\(r.name)/mask/\(name)_mask.png")
            }
            var facts = out.facts
            facts["tb_label"] = String(tb)
            let thumb = c < 4 ? Thumbnail(gray: out.image, mask: both) : nil
            return (Case(site: r.name, siteDistance: r.distance, id: name, mode: mode, image: "\(r.name)/CXR_png/\(name).png",
                         masks: masks, facts: facts), thumb)
        case .fundus:
            let out = FundusPhantom.render(site: r, mode: mode, seed: seed, streams: streams)
            let (w, h) = (r.size[0], r.size[1])
            let n = w * h
            var voxels = [Float](repeating: 0, count: 3 * n)
            for ch in 0..<3 { for k in 0..<n { voxels[ch * n + k] = (out.rgb[ch].data[k] * 255).rounded() } }
            let affine = Affine.diagonal(spacing: [r.spacing[0], r.spacing[1], 1])
            let image = MedicalImage(shape: ImageShape(w, h, 1, 3), voxels: voxels, affine: affine,
                                     info: ImageInfo(storedType: .uint8, components: .color))
            let name = "image\(c + 1)"
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try PNGWriter.write(image, to: "\(dir)/\(name).png", options: .init(bitDepth: 8, compressionLevel: 3))
            let labels = MedicalImage(shape: ImageShape(w, h), voxels: out.labels.data, affine: affine, kind: .labelMap,
                                      info: ImageInfo(storedType: .uint8))
            try PNGWriter.write(labels, to: "\(dir)/\(name)-1.png", options: .init(bitDepth: 8))
            let thumb = c < 4 ? Thumbnail(rgb: out.rgb, mask: out.labels) : nil
            return (Case(site: r.name, siteDistance: r.distance, id: name, mode: mode, image: "\(r.name)/\(name).png",
                         masks: ["\(r.name)/\(name)-1.png"], facts: out.facts), thumb)
        case .prostate:
            let out = ProstatePhantom.render(site: r, mode: mode, seed: seed, streams: streams)
            let (nx, ny, nz) = (r.size[0], r.size[1], r.size[2])
            // Stored the way DICOM-converted prostate volumes usually are: x and y flipped (LPS-like), origin at a corner.
            var affine = Affine.diagonal(spacing: [-r.spacing[0], -r.spacing[1], r.spacing[2]])
            affine[0, 3] = r.spacing[0] * Double(nx) / 2; affine[1, 3] = r.spacing[1] * Double(ny) / 2
            affine[2, 3] = -r.spacing[2] * Double(nz) / 2
            let image = MedicalImage(shape: ImageShape(nx, ny, nz), voxels: out.volume.map { ($0 * 1000).rounded() }, affine: affine,
                                     info: ImageInfo(storedType: .int16))
            let labels = MedicalImage(shape: ImageShape(nx, ny, nz), voxels: out.labels, affine: affine, kind: .labelMap,
                                      info: ImageInfo(storedType: .uint8))
            let name = String(format: "Case%02d", c)
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try NIfTIWriter.write(image, to: "\(dir)/\(name).nii.gz", options: .init(storedType: .int16))
            try NIfTIWriter.write(labels, to: "\(dir)/\(name)\(r.layout).nii.gz", options: .init(storedType: .uint8))
            var thumb: Thumbnail? = nil
            if c < 4 {
                // The slice with the most gland.
                var best = 0, bestCount = -1
                for k in 0..<nz {
                    let cnt = out.labels[(k * nx * ny)..<((k + 1) * nx * ny)].reduce(0, +)
                    if Int(cnt) > bestCount { bestCount = Int(cnt); best = k }
                }
                var g = Plane(nx, ny), m = Plane(nx, ny)
                g.data = Array(out.volume[(best * nx * ny)..<((best + 1) * nx * ny)]).map { min(1, $0) }
                m.data = Array(out.labels[(best * nx * ny)..<((best + 1) * nx * ny)])
                thumb = Thumbnail(gray: g, mask: m)
            }
            return (Case(site: r.name, siteDistance: r.distance, id: name, mode: mode, image: "\(r.name)/\(name).nii.gz",
                         masks: ["\(r.name)/\(name)\(r.layout).nii.gz"], facts: out.facts), thumb)
        }
    }

    /// RIGA+'s split files: `<domain>_train.csv` and `<domain>_test.csv` (columns image,mask; paths relative to the
    /// root), 80 % / 20 % of the cases in a seeded order.
    static func writeRIGASplits(_ cases: [Case], site: ResolvedSite, seed: UInt64, index: Int, folder: String) throws {
        var order = Array(cases.indices)
        var rng = PhantomRandom(seed: seed, streams: [index, -3])
        order.shuffle(using: &rng)
        let nTrain = Int((Double(cases.count) * 0.8).rounded())
        for (split, rows) in [("train", order.prefix(nTrain).sorted()), ("test", order.dropFirst(nTrain).sorted())] {
            var text = "image,mask\n"
            for i in rows { text += "\(cases[i].image),\(cases[i].masks.first ?? "")\n" }
            try AtomicFile.write(text, to: "\(folder)/\(site.name)_\(split).csv")
        }
    }

    static func factColumns(_ benchmark: PhantomBenchmark) -> [String] {
        switch benchmark {
        case .cxr: return ["lung_area_fraction", "cardiothoracic_ratio", "effusion_side", "fluid_fraction", "tb_label", "rotation_deg"]
        case .fundus: return ["cup_to_disc_ratio", "disc_radius_mm", "disc_area_fraction", "cup_area_fraction", "eye"]
        case .prostate: return ["gland_volume_ml", "gland_offset_mm", "rotation_deg"]
        }
    }

    static func writeTable(_ cases: [Case], benchmark: PhantomBenchmark, to path: String) throws {
        let facts = factColumns(benchmark)
        var text = (["benchmark", "site", "site_distance", "case", "mode", "image", "masks"] + facts).joined(separator: ",") + "\n"
        for c in cases {
            let row = [benchmark.rawValue, c.site, String(c.siteDistance), c.id, c.mode, c.image, c.masks.joined(separator: ";")]
                + facts.map { c.facts[$0] ?? "" }
            text += row.joined(separator: ",") + "\n"
        }
        try AtomicFile.write(text, to: path)
    }

    static func writeSites(config: PhantomConfig, seed: UInt64, count: Int, size: Int?, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var text = String(decoding: try encoder.encode(config), as: UTF8.self)
        // The generator settings go beside the sites so the folder says how to make it again.
        text = "{\n  \"generator\" : { \"seed\" : \(seed), \"count\" : \(count), \"size\" : \(size.map(String.init) ?? "null") },\n" + text.dropFirst(2)
        try AtomicFile.write(text + "\n", to: path)
    }
}
