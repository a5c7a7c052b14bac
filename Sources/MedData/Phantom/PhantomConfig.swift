import Foundation

/// Which public benchmark a phantom imitates.
public enum PhantomBenchmark: String, Sendable, Codable, CaseIterable {
    case cxr, fundus, prostate

    /// The anatomical sub-populations and their default frequencies (the first is the common mode).
    public var defaultModes: [(name: String, frequency: Double)] {
        switch self {
        case .cxr: return [("normal", 0.83), ("small_lungs", 0.06), ("effusion", 0.05), ("cardiomegaly", 0.06)]
        case .fundus: return [("normal", 0.86), ("glaucoma", 0.08), ("small_disc", 0.06)]
        case .prostate: return [("normal", 0.85), ("enlarged", 0.08), ("off_centre", 0.07)]
        }
    }
}

/// One acquisition site: scanner parameters, patient mix, and its known distance from the source site.
///
/// Every field but `name` and `distance` is optional in JSON; missing ones take the benchmark's defaults
/// (``PhantomSite/resolved(for:)``). Intensities are modelled on a normalised [0, 1] signal s:
/// s' = offset + contrast · s^gamma, then the bias field multiplies, the blur (Gaussian, sigma in mm) and the noise
/// (standard deviation relative to the full range; Gaussian, or Rician for MRI) follow.
public struct PhantomSite: Sendable, Codable, Equatable {
    /// Folder name (for the prostate collection also the site code, e.g. RUNMC).
    public var name: String
    /// Ground-truth distance from the source site (0 = the source); per-site analyses are checked against it.
    public var distance: Double
    /// Cases at this site (default: --count).
    public var count: Int?
    /// Native image size: [width, height] for 2-D, [nx, ny, nz] for MRI.
    public var size: [Int]?
    /// Native spacing in mm: [x, y] or [x, y, z].
    public var spacing: [Double]?
    public var gamma: Double?
    public var contrast: Double?
    public var offset: Double?
    /// Noise standard deviation relative to the full range.
    public var noise: Double?
    /// "gaussian" or "rician" (MRI magnitude images).
    public var noiseType: String?
    /// Gaussian blur sigma in mm.
    public var blur: Double?
    /// Bias-field (or illumination) strength, 0 = none.
    public var bias: Double?
    /// MRI: an endorectal coil (strong signal falling off from the rectum).
    public var endorectalCoil: Bool?
    /// Largest random in-plane rotation, degrees, and translation, mm.
    public var rotation: Double?
    public var translation: Double?
    /// Fundus: RGB gains (vendor colour balance).
    public var colorBalance: [Double]?
    /// Sub-population frequencies (mode name -> fraction); missing modes keep their default, "normal" takes the rest.
    public var modes: [String: Double]?
    /// File layout variant: cxr "montgomery" | "shenzhen"; prostate segmentation suffix "_segmentation" | "_Segmentation".
    public var layout: String?
    /// File-name prefix (cxr: MCUCXR, CHNCXR, ...).
    public var prefix: String?
    /// Fraction of cases written with a mask (Shenzhen has images without masks).
    public var maskedFraction: Double?

    public init(name: String, distance: Double) {
        self.name = name
        self.distance = distance
    }

    static let knownKeys: Set<String> = ["name", "distance", "count", "size", "spacing", "gamma", "contrast", "offset", "noise",
                                         "noiseType", "blur", "bias", "endorectalCoil", "rotation", "translation",
                                         "colorBalance", "modes", "layout", "prefix", "maskedFraction"]

    /// This site's mode frequencies: defaults overridden by `modes`, "normal" (the first mode) takes what is left.
    public func modeFrequencies(for benchmark: PhantomBenchmark) -> [(name: String, frequency: Double)] {
        var out = benchmark.defaultModes
        for i in 1..<out.count { if let f = modes?[out[i].name] { out[i].frequency = f } }
        out[0].frequency = max(0, 1 - out.dropFirst().reduce(0) { $0 + $1.frequency })
        return out
    }
}

/// A phantom benchmark: which benchmark and its sites (the first with distance 0 is the source).
public struct PhantomConfig: Sendable, Codable, Equatable {
    public var benchmark: PhantomBenchmark
    public var sites: [PhantomSite]

    public init(benchmark: PhantomBenchmark, sites: [PhantomSite]) {
        self.benchmark = benchmark
        self.sites = sites
    }

    /// Reads and validates a sites JSON file (`{"benchmark": "cxr", "sites": [...]}`); unknown keys are errors.
    public static func load(_ path: String) throws -> PhantomConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.badConfiguration(path: path, reason: "cannot read the file")
        }
        return try parse(data, path: path)
    }

    public static func parse(_ data: Data, path: String = "<sites>") throws -> PhantomConfig {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError.badConfiguration(path: path, reason: "not a JSON object")
        }
        // "generator" (seed, count, size) is what phantom_sites.json records; it is informational here.
        for key in object.keys.sorted() where !["benchmark", "sites", "generator"].contains(key) {
            throw DataError.badConfiguration(path: path, reason: "unknown key '\(key)' (expected benchmark, sites)")
        }
        if let sites = object["sites"] as? [[String: Any]] {
            for (i, site) in sites.enumerated() {
                if let bad = site.keys.sorted().first(where: { !PhantomSite.knownKeys.contains($0) }) {
                    throw DataError.badConfiguration(path: path, reason: "site \(i): unknown key '\(bad)'")
                }
            }
        }
        let config: PhantomConfig
        do {
            config = try JSONDecoder().decode(PhantomConfig.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw DataError.badConfiguration(path: path, reason: "missing '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw DataError.badConfiguration(path: path, reason: "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.dataCorrupted(context) {
            throw DataError.badConfiguration(path: path, reason: "\(context.debugDescription) at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        }
        try config.validate(path: path)
        return config
    }

    /// Checks ranges and names; throws the first problem found.
    public func validate(path: String = "<sites>") throws {
        func fail(_ reason: String) -> DataError { .badConfiguration(path: path, reason: reason) }
        guard !sites.isEmpty else { throw fail("no sites") }
        var names = Set<String>()
        let dims = benchmark == .prostate ? 3 : 2
        for s in sites {
            let where_ = "site '\(s.name)'"
            guard !s.name.isEmpty, s.name.range(of: "^[A-Za-z0-9_.+-]+$", options: .regularExpression) != nil else {
                throw fail("\(where_): the name must be a plain folder name (letters, digits, _ . + -)")
            }
            guard names.insert(s.name).inserted else { throw fail("\(where_) appears twice") }
            guard s.distance.isFinite, s.distance >= 0 else { throw fail("\(where_): distance must be >= 0") }
            if let c = s.count, c < 1 || c > 1_000_000 { throw fail("\(where_): count must lie in 1...1000000") }
            if let z = s.size {
                guard z.count == dims, z.allSatisfy({ (8...8192).contains($0) }) || (dims == 3 && z.count == 3 && z[0] >= 8 && z[1] >= 8 && z[2] >= 1 && z.allSatisfy { $0 <= 8192 }) else {
                    throw fail("\(where_): size needs \(dims) values in 8...8192")
                }
            }
            if let sp = s.spacing, sp.count != dims || !sp.allSatisfy({ $0 > 0 && $0.isFinite }) {
                throw fail("\(where_): spacing needs \(dims) positive values (mm)")
            }
            if let g = s.gamma, !(g > 0 && g < 10) { throw fail("\(where_): gamma must lie in (0, 10)") }
            if let c = s.contrast, !(c > 0 && c < 10) { throw fail("\(where_): contrast must lie in (0, 10)") }
            if let o = s.offset, !(abs(o) < 1) { throw fail("\(where_): offset must lie in (-1, 1)") }
            if let n = s.noise, !(n >= 0 && n < 1) { throw fail("\(where_): noise must lie in [0, 1)") }
            if let t = s.noiseType, !["gaussian", "rician"].contains(t) { throw fail("\(where_): noiseType must be gaussian or rician") }
            if let b = s.blur, !(b >= 0 && b < 100) { throw fail("\(where_): blur must lie in [0, 100) mm") }
            if let b = s.bias, !(b >= 0 && b < 5) { throw fail("\(where_): bias must lie in [0, 5)") }
            if let r = s.rotation, !(r >= 0 && r <= 180) { throw fail("\(where_): rotation must lie in [0, 180] degrees") }
            if let t = s.translation, !(t >= 0 && t < 1000) { throw fail("\(where_): translation must lie in [0, 1000) mm") }
            if let c = s.colorBalance, c.count != 3 || !c.allSatisfy({ $0 > 0 && $0 < 10 }) { throw fail("\(where_): colorBalance needs 3 gains in (0, 10)") }
            if let f = s.maskedFraction, !(f >= 0 && f <= 1) { throw fail("\(where_): maskedFraction must lie in [0, 1]") }
            if let l = s.layout {
                let allowed: [String] = benchmark == .cxr ? ["montgomery", "shenzhen"] : benchmark == .prostate ? ["_segmentation", "_Segmentation"] : ["riga"]
                guard allowed.contains(l) else { throw fail("\(where_): layout must be one of \(allowed.joined(separator: ", "))") }
            }
            if let m = s.modes {
                let known = Set(benchmark.defaultModes.map(\.name))
                if let bad = m.keys.sorted().first(where: { !known.contains($0) }) {
                    throw fail("\(where_): unknown mode '\(bad)' (\(benchmark.defaultModes.map(\.name).joined(separator: ", ")))")
                }
                guard m.values.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw fail("\(where_): mode frequencies must lie in [0, 1]") }
                let rare = s.modeFrequencies(for: benchmark).dropFirst().reduce(0) { $0 + $1.frequency }
                guard rare <= 1 + 1e-9 else { throw fail("\(where_): mode frequencies add up to more than 1") }
            }
        }
    }

    /// The preset names per benchmark.
    public static let presetNames: [PhantomBenchmark: [String]] = [
        .cxr: ["graded", "hard"], .fundus: ["graded", "hard"], .prostate: ["graded", "six-site", "hard"],
    ]

    /// The `hard` preset: the graded sites with a room to choose (Docs/datasets.md, calibration). The scanner moves
    /// further from the source than in `graded` (the far setting below is reached at distance 1), the sub-populations
    /// that change the masks are rare at the source (2 % each) and common at the far sites, and one of them stays rare
    /// everywhere (4 % of each target site) so that what a selection covers shows in the Dice.
    static func hardened(_ graded: PhantomConfig) -> PhantomConfig {
        func lerp(_ a: Double, _ b: Double, _ t: Double) -> Double { a + (b - a) * t }
        var out = graded
        for i in out.sites.indices {
            var s = out.sites[i]
            let t = s.distance
            switch graded.benchmark {
            case .cxr:
                s.gamma = lerp(1.0, 2.6, t); s.contrast = lerp(1.0, 0.4, t); s.offset = lerp(0.0, 0.3, t)
                s.noise = lerp(0.01, 0.12, t); s.blur = lerp(0.2, 3.0, t); s.bias = lerp(0.0, 1.0, t)
                s.rotation = lerp(2, 12, t); s.translation = lerp(3, 25, t); s.maskedFraction = 1
                s.modes = t == 0 ? ["small_lungs": 0.02, "effusion": 0.01, "cardiomegaly": 0.02]
                    : ["small_lungs": lerp(0.02, 0.30, t), "effusion": 0.04, "cardiomegaly": lerp(0.02, 0.30, t)]
            case .fundus:
                s.size = [Int(lerp(800, 560, t)), Int(lerp(800, 560, t))]
                s.gamma = lerp(1.0, 2.6, t); s.contrast = lerp(1.0, 0.4, t); s.offset = lerp(0.0, 0.2, t)
                s.noise = lerp(0.01, 0.12, t); s.blur = lerp(0.005, 0.08, t); s.bias = lerp(0.1, 1.6, t)
                s.colorBalance = [lerp(1.0, 0.6, t), lerp(1.0, 1.3, t), lerp(1.0, 2.0, t)]
                s.rotation = lerp(3, 25, t); s.translation = lerp(0.1, 1.5, t)
                s.modes = t == 0 ? ["glaucoma": 0.02, "small_disc": 0.02] : ["glaucoma": lerp(0.02, 0.45, t), "small_disc": 0.04]
            case .prostate:
                s.spacing = [lerp(0.5, 0.8, t), lerp(0.5, 0.8, t), lerp(3.6, 4.5, t)].map { ($0 * 1000).rounded() / 1000 }
                s.size = [Int(lerp(384, 256, t)), Int(lerp(384, 256, t)), Int(lerp(20, 18, t))]
                s.gamma = lerp(1.0, 2.0, t); s.contrast = lerp(1.0, 0.45, t); s.offset = lerp(0.0, 0.2, t)
                s.noise = lerp(0.015, 0.12, t); s.blur = lerp(0.3, 2.0, t); s.bias = lerp(0.05, 2.0, t)
                s.endorectalCoil = t >= 0.5; s.rotation = lerp(2, 15, t); s.translation = lerp(2, 15, t)
                s.modes = t == 0 ? ["enlarged": 0.02, "off_centre": 0.02] : ["enlarged": lerp(0.02, 0.30, t), "off_centre": 0.04]
            }
            out.sites[i] = s
        }
        return out
    }

    /// A built-in preset: one source site (distance 0) and target sites whose every scanner parameter moves from the
    /// source's value towards a far setting in proportion to the distance, so the shift is graded by construction.
    public static func preset(_ name: String, benchmark: PhantomBenchmark) throws -> PhantomConfig {
        guard presetNames[benchmark]?.contains(name) == true else {
            throw DataError.badConfiguration(path: "--preset", reason: "unknown preset '\(name)' for \(benchmark.rawValue) (available: \(presetNames[benchmark]!.joined(separator: ", ")))")
        }
        func lerp(_ a: Double, _ b: Double, _ t: Double) -> Double { a + (b - a) * t }
        if name == "hard" { return hardened(try preset("graded", benchmark: benchmark)) }
        switch benchmark {
        case .cxr:
            let names = [("MCU", "montgomery", "MCUCXR", 0.0), ("CHN", "shenzhen", "CHNCXR", 0.25), ("SiteC", "shenzhen", "SCCXR", 0.5),
                         ("SiteD", "shenzhen", "SDCXR", 0.75), ("SiteE", "shenzhen", "SECXR", 1.0)]
            return PhantomConfig(benchmark: .cxr, sites: names.map { n, layout, prefix, t in
                var s = PhantomSite(name: n, distance: t)
                s.layout = layout; s.prefix = prefix
                s.size = [Int(lerp(2048, 1536, t)), Int(lerp(2048, 1664, t))]
                s.spacing = [lerp(0.175, 0.2, t), lerp(0.175, 0.2, t)].map { ($0 * 1000).rounded() / 1000 }
                s.gamma = lerp(1.0, 1.9, t); s.contrast = lerp(1.0, 0.6, t); s.offset = lerp(0.0, 0.18, t)
                s.noise = lerp(0.01, 0.06, t); s.blur = lerp(0.2, 1.6, t); s.bias = lerp(0.0, 0.45, t)
                s.rotation = lerp(2, 8, t); s.translation = lerp(3, 15, t)
                s.maskedFraction = layout == "shenzhen" ? 0.85 : 1
                return s
            })
        case .fundus:
            let names = [("BinRushed", 0.0), ("Magrabia", 0.25), ("MESSIDOR_Base1", 0.5), ("MESSIDOR_Base2", 0.75), ("MESSIDOR_Base3", 1.0)]
            return PhantomConfig(benchmark: .fundus, sites: names.map { n, t in
                var s = PhantomSite(name: n, distance: t)
                s.layout = "riga"
                s.size = [Int(lerp(800, 640, t)), Int(lerp(800, 640, t))]
                s.spacing = [lerp(0.012, 0.016, t), lerp(0.012, 0.016, t)].map { ($0 * 10000).rounded() / 10000 }
                s.gamma = lerp(1.0, 1.6, t); s.contrast = lerp(1.0, 0.7, t); s.offset = lerp(0.0, 0.08, t)
                s.noise = lerp(0.01, 0.04, t); s.blur = lerp(0.005, 0.03, t); s.bias = lerp(0.1, 0.6, t)
                s.colorBalance = [lerp(1.0, 0.8, t), lerp(1.0, 1.15, t), lerp(1.0, 1.5, t)]
                s.rotation = lerp(3, 10, t); s.translation = lerp(0.1, 0.6, t)
                return s
            })
        case .prostate:
            let six = name == "six-site"
            let names: [(String, String, Double)] = six
                ? [("RUNMC", "_segmentation", 0.0), ("BMC", "_segmentation", 0.2), ("I2CVB", "_segmentation", 0.4),
                   ("UCL", "_segmentation", 0.6), ("BIDMC", "_Segmentation", 0.8), ("HK", "_Segmentation", 1.0)]
                : [("RUNMC", "_segmentation", 0.0), ("BMC", "_segmentation", 0.25), ("UCL", "_segmentation", 0.5),
                   ("BIDMC", "_Segmentation", 0.75), ("HK", "_Segmentation", 1.0)]
            return PhantomConfig(benchmark: .prostate, sites: names.map { n, layout, t in
                var s = PhantomSite(name: n, distance: t)
                s.layout = layout
                s.size = [Int(lerp(384, 320, t)), Int(lerp(384, 320, t)), Int(lerp(20, 30, t))]
                s.spacing = [lerp(0.5, 0.625, t), lerp(0.5, 0.625, t), lerp(3.6, 3.0, t)].map { ($0 * 1000).rounded() / 1000 }
                s.gamma = lerp(1.0, 1.5, t); s.contrast = lerp(1.0, 0.65, t); s.offset = lerp(0.0, 0.1, t)
                s.noise = lerp(0.015, 0.06, t); s.noiseType = "rician"; s.blur = lerp(0.3, 1.2, t)
                s.bias = lerp(0.05, 1.2, t); s.endorectalCoil = t >= 0.7
                s.rotation = lerp(2, 10, t); s.translation = lerp(2, 10, t)
                return s
            })
        }
    }
}
