import ArgumentParser
import Foundation
import MedFormats
import MedImage

/// Image operations applied by `convert` between reading and writing, in this order: label handling, reorientation,
/// resampling, percentile clipping, normalisation.
struct PreprocessOptions: ParsableArguments {
    @Flag(help: "Treat the input as a label map (nearest-neighbour resampling, integer output).")
    var label = false

    @Option(help: "Reorient to these axis codes, e.g. RAS (permute/flip only, no interpolation).")
    var reorient: String?

    @Option(help: "Resample to this spacing in mm, e.g. 0.7,0.7,3 (physical extent kept).")
    var spacing: String?

    @Option(help: "Resample to this grid size, e.g. 256,256,1.")
    var shape: String?

    @Option(help: "Resample onto this image's grid through world coordinates (e.g. a prediction back to the original space).")
    var onto: String?

    @Option(help: "Interpolation for images: nearest, linear or cubic (label maps always use nearest).")
    var interpolation: String = "linear"

    @Flag(name: .customLong("no-antialias"), help: "Do not low-pass filter when downsampling.")
    var noAntialias = false

    @Option(name: .customLong("clip-percentiles"), help: "Clip intensities to these percentiles, e.g. 0.5,99.5.")
    var clipPercentiles: String?

    @Option(help: "Normalise intensities: zscore or minmax.")
    var normalize: String?

    @Option(name: .customLong("remap"), help: "Relabel values, e.g. 128:1,255:2 (RIGA disc/cup) or 255:1.")
    var remap: String?

    var isEmpty: Bool {
        !label && reorient == nil && spacing == nil && shape == nil && onto == nil && clipPercentiles == nil && normalize == nil
            && remap == nil
    }

    static func numbers(_ text: String, count: Int, name: String) throws -> [Double] {
        let v = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == count, v.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw ValidationError("\(name) needs \(count) comma-separated numbers, got '\(text)'")
        }
        return v.map { $0! }
    }

    func validate() throws {
        if let r = reorient, Orientation(codes: r) == nil { throw ValidationError("--reorient needs three axis codes such as RAS or LPS") }
        if [spacing, shape, onto].compactMap({ $0 }).count > 1 { throw ValidationError("give one of --spacing, --shape and --onto") }
        if let s = spacing, try Self.numbers(s, count: 3, name: "--spacing").contains(where: { $0 <= 0 }) {
            throw ValidationError("--spacing values must be positive")
        }
        if let s = shape, try Self.numbers(s, count: 3, name: "--shape").contains(where: { $0 < 1 || $0 != $0.rounded() }) {
            throw ValidationError("--shape values must be positive integers")
        }
        if Interpolation(rawValue: interpolation) == nil { throw ValidationError("--interpolation must be nearest, linear or cubic") }
        if let c = clipPercentiles {
            let p = try Self.numbers(c, count: 2, name: "--clip-percentiles")
            if !(0 <= p[0] && p[0] < p[1] && p[1] <= 100) { throw ValidationError("--clip-percentiles needs 0 <= low < high <= 100") }
        }
        if let n = normalize, !["zscore", "minmax"].contains(n) { throw ValidationError("--normalize must be zscore or minmax") }
        _ = try mapping()
    }

    func mapping() throws -> [Float: Float]? {
        guard let r = remap else { return nil }
        var out: [Float: Float] = [:]
        for pair in r.split(separator: ",") {
            let kv = pair.split(separator: ":").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard kv.count == 2, let k = kv[0], let v = kv[1] else { throw ValidationError("--remap takes pairs like 128:1,255:2") }
            out[k] = v
        }
        return out
    }

    func apply(_ input: MedicalImage) throws -> MedicalImage {
        var img = input
        if label { img.kind = .labelMap }
        if let m = try mapping() { img = img.remapped(m) }
        if let r = reorient { img = try img.reoriented(to: r) }
        let mode = Interpolation(rawValue: interpolation)!
        if let s = spacing {
            img = try img.resampled(toSpacing: try Self.numbers(s, count: 3, name: "--spacing"), interpolation: mode, antialias: !noAntialias)
        }
        if let s = shape {
            img = try img.resampled(toShape: try Self.numbers(s, count: 3, name: "--shape").map { Int($0) }, interpolation: mode, antialias: !noAntialias)
        }
        if let reference = onto {
            img = try img.resampled(onto: try ImageIO.read(reference), interpolation: mode)
        }
        if img.kind == .scalar && (spacing != nil || shape != nil || onto != nil) && mode != .nearest && img.info.storedType.isInteger {
            img.info.storedType = .float32      // interpolated values are not integers
        }
        if let c = clipPercentiles {
            let p = try Self.numbers(c, count: 2, name: "--clip-percentiles")
            img = img.clipped(toPercentiles: p[0], p[1])
        }
        switch normalize {
        case "zscore": img = try img.zScored()
        case "minmax": img = img.minMaxScaled()
        default: break
        }
        return img
    }
}

struct DistanceMap: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        commandName: "distance-map",
        abstract: "Exact Euclidean distance (mm) from each foreground voxel to the nearest background voxel.",
        discussion: """
        The same as SciPy's distance_transform_edt(mask, sampling=spacing); --inside-out measures background voxels to \
        the nearest foreground instead. Example: medselect distance-map seg.nii.gz dist.nii.gz
        """
    )
    @Argument(help: "Mask or label map (non-zero = foreground).") var input: String
    @Argument(help: "Output image (float32).") var output: String
    @Flag(name: .customLong("inside-out"), help: "Distance of background voxels to the foreground.") var insideOut = false
    @OptionGroup var limits: ReadLimitOptions

    func run() throws {
        var img = try ImageIO.read(input, options: limits.readOptions)
        if insideOut { img.voxels = img.voxels.map { $0 == 0 ? 1 : 0 } }
        var d = DistanceTransform.euclidean(img)
        d.info.format = img.info.format
        try ImageIO.write(d, to: output, options: .init(storedType: .float32))
    }
}
