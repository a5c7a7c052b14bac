import Foundation
import MedFoundation
import MedImage

/// How the two directed 95th percentiles combine into HD95.
public enum HD95Pooling: String, Sendable, Codable {
    /// max(p95(pred -> ref), p95(ref -> pred)): MONAI, DeepMind surface-distance. The default.
    case maxOfDirected = "max"
    /// p95 of both directed sets together: MedPy.
    case pooled
}

/// What metrics report when masks are empty.
public struct EmptyMaskPolicy: Sendable, Equatable, Codable {
    /// Dice/IoU when both masks are empty: NaN (MONAI `ignore_empty=True`, the default) or 1.
    public var bothEmptyOverlap: Double
    /// Surface distances when both masks are empty: NaN by default.
    public var bothEmptyDistance: Double
    /// Surface distances when exactly one mask is empty: +infinity (default) or NaN.
    public var oneEmptyDistance: Double

    public init(bothEmptyOverlap: Double = .nan, bothEmptyDistance: Double = .nan, oneEmptyDistance: Double = .infinity) {
        self.bothEmptyOverlap = bothEmptyOverlap
        self.bothEmptyDistance = bothEmptyDistance
        self.oneEmptyDistance = oneEmptyDistance
    }

    public static let monai = EmptyMaskPolicy()

    public static func == (a: EmptyMaskPolicy, b: EmptyMaskPolicy) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return same(a.bothEmptyOverlap, b.bothEmptyOverlap) && same(a.bothEmptyDistance, b.bothEmptyDistance)
            && same(a.oneEmptyDistance, b.oneEmptyDistance)
    }
}

/// Metrics of one label in one case. Distances in mm.
public struct LabelMetrics: Sendable, Equatable, Codable {
    public var dice: Double
    public var iou: Double
    public var precision: Double
    public var sensitivity: Double
    public var hausdorff: Double
    public var hausdorff95: Double
    public var assd: Double
    /// Voxel counts: prediction, reference, overlap.
    public var predictedVoxels: Int
    public var referenceVoxels: Int
    public var overlapVoxels: Int

    public static func == (a: LabelMetrics, b: LabelMetrics) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return same(a.dice, b.dice) && same(a.iou, b.iou) && same(a.precision, b.precision)
            && same(a.sensitivity, b.sensitivity) && same(a.hausdorff, b.hausdorff) && same(a.hausdorff95, b.hausdorff95)
            && same(a.assd, b.assd) && a.predictedVoxels == b.predictedVoxels && a.referenceVoxels == b.referenceVoxels
            && a.overlapVoxels == b.overlapVoxels
    }

    /// The metric values by name (the names of the JSON output).
    public var values: [(String, Double)] {
        [("dice", dice), ("iou", iou), ("precision", precision), ("sensitivity", sensitivity),
         ("hausdorff_mm", hausdorff), ("hausdorff95_mm", hausdorff95), ("assd_mm", assd)]
    }
}

/// Errors of metric computation.
public enum MetricsError: MedError, Sendable {
    case shapeMismatch(prediction: String, reference: String)
    /// The prediction or the reference (`role`) is not an integer label map.
    case notALabelMap(role: String, reason: String)
    public var path: String { "" }
    public var reason: String {
        switch self {
        case .shapeMismatch(let p, let r): return "prediction shape \(p) differs from reference shape \(r); resample the prediction onto the reference grid first"
        case .notALabelMap(let role, let reason): return "the \(role) is not a label map: \(reason)"
        }
    }
}

public enum SegmentationMetrics {
    /// Metrics for each label value (default: every non-zero value present in either image).
    public static func compute(prediction: MedicalImage, reference: MedicalImage, labels: [Int]? = nil,
                               hd95: HD95Pooling = .maxOfDirected, empty: EmptyMaskPolicy = .monai) throws -> [Int: LabelMetrics] {
        let ps = prediction.shape, rs = reference.shape
        guard ps.x == rs.x && ps.y == rs.y && ps.z == rs.z else {
            throw MetricsError.shapeMismatch(prediction: ps.description, reference: rs.description)
        }
        if let problem = prediction.labelMapProblem { throw MetricsError.notALabelMap(role: "prediction", reason: problem) }
        if let problem = reference.labelMapProblem { throw MetricsError.notALabelMap(role: "reference", reason: problem) }
        let n = rs.spatialCount
        let chosen: [Int] = labels ?? {
            var set = Set<Int>()
            for v in prediction.voxels[0..<n] where v != 0 { set.insert(Int(v)) }
            for v in reference.voxels[0..<n] where v != 0 { set.insert(Int(v)) }
            return set.sorted()
        }()
        var out: [Int: LabelMetrics] = [:]
        for label in chosen {
            let l = Float(label)
            let p = prediction.voxels[0..<n].map { $0 == l }
            let r = reference.voxels[0..<n].map { $0 == l }
            out[label] = binary(prediction: p, reference: r, dims: [rs.x, rs.y, rs.z], spacing: reference.spacing,
                                hd95: hd95, empty: empty)
        }
        return out
    }

    /// Metrics of two binary masks on the same grid.
    public static func binary(prediction p: [Bool], reference r: [Bool], dims: [Int], spacing: [Double],
                              hd95: HD95Pooling = .maxOfDirected, empty: EmptyMaskPolicy = .monai) -> LabelMetrics {
        var np = 0, nr = 0, both = 0
        for i in 0..<p.count {
            if p[i] { np += 1; if r[i] { both += 1 } }
            if r[i] { nr += 1 }
        }
        var m = LabelMetrics(dice: 0, iou: 0, precision: 0, sensitivity: 0, hausdorff: 0, hausdorff95: 0, assd: 0,
                             predictedVoxels: np, referenceVoxels: nr, overlapVoxels: both)
        if np == 0 && nr == 0 {
            m.dice = empty.bothEmptyOverlap; m.iou = empty.bothEmptyOverlap
            m.precision = .nan; m.sensitivity = .nan
            m.hausdorff = empty.bothEmptyDistance; m.hausdorff95 = empty.bothEmptyDistance; m.assd = empty.bothEmptyDistance
            return m
        }
        m.dice = 2 * Double(both) / Double(np + nr)
        m.iou = Double(both) / Double(np + nr - both)
        m.precision = np > 0 ? Double(both) / Double(np) : .nan
        m.sensitivity = nr > 0 ? Double(both) / Double(nr) : .nan
        if np == 0 || nr == 0 {
            m.hausdorff = empty.oneEmptyDistance; m.hausdorff95 = empty.oneEmptyDistance; m.assd = empty.oneEmptyDistance
            return m
        }
        let (dPR, dRP) = directedSurfaceDistances(p, r, dims: dims, spacing: spacing)
        m.hausdorff = max(dPR.last ?? 0, dRP.last ?? 0)
        switch hd95 {
        case .maxOfDirected: m.hausdorff95 = max(percentile(sorted: dPR, 95), percentile(sorted: dRP, 95))
        case .pooled: m.hausdorff95 = percentile(sorted: (dPR + dRP).sorted(), 95)
        }
        m.assd = (dPR.reduce(0, +) + dRP.reduce(0, +)) / Double(dPR.count + dRP.count)
        return m
    }

    /// NumPy-style linear-interpolated percentile of a sorted array.
    static func percentile(sorted v: [Double], _ q: Double) -> Double {
        guard !v.isEmpty else { return .nan }
        let pos = q / 100 * Double(v.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, v.count - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - Double(lo))
    }

    /// Border voxels: mask and not eroded(mask) with the face-connected structure, outside the grid = background.
    static func border(_ m: [Bool], dims: [Int]) -> [Bool] {
        let (nx, ny, nz) = (dims[0], dims[1], dims[2])
        var out = [Bool](repeating: false, count: m.count)
        for k in 0..<nz { for j in 0..<ny { for i in 0..<nx {
            let idx = i + nx * (j + ny * k)
            guard m[idx] else { continue }
            var interior = i > 0 && i < nx - 1 && m[idx - 1] && m[idx + 1]
            if interior && ny > 1 { interior = j > 0 && j < ny - 1 && m[idx - nx] && m[idx + nx] } else if ny == 1 { interior = false }
            if interior && nz > 1 { interior = k > 0 && k < nz - 1 && m[idx - nx * ny] && m[idx + nx * ny] }
            out[idx] = !interior
        } } }
        return out
    }

    /// Sorted directed distances (mm): prediction border -> reference border, and reference border -> prediction border.
    /// Works inside the union bounding box of both masks grown by one voxel, which leaves every distance unchanged.
    static func directedSurfaceDistances(_ p: [Bool], _ r: [Bool], dims: [Int], spacing: [Double]) -> ([Double], [Double]) {
        let (nx, ny, nz) = (dims[0], dims[1], dims[2])
        var lo = [Int.max, Int.max, Int.max], hi = [-1, -1, -1]
        for k in 0..<nz { for j in 0..<ny { for i in 0..<nx where p[i + nx * (j + ny * k)] || r[i + nx * (j + ny * k)] {
            lo[0] = min(lo[0], i); lo[1] = min(lo[1], j); lo[2] = min(lo[2], k)
            hi[0] = max(hi[0], i); hi[1] = max(hi[1], j); hi[2] = max(hi[2], k)
        } } }
        let l = (0..<3).map { max(0, lo[$0] - 1) }
        let u = (0..<3).map { min(dims[$0] - 1, hi[$0] + 1) }
        let bd = (0..<3).map { u[$0] - l[$0] + 1 }
        var pc = [Bool](repeating: false, count: bd[0] * bd[1] * bd[2])
        var rc = pc
        for k in 0..<bd[2] { for j in 0..<bd[1] { for i in 0..<bd[0] {
            let src = (i + l[0]) + nx * ((j + l[1]) + ny * (k + l[2]))
            let dst = i + bd[0] * (j + bd[1] * k)
            pc[dst] = p[src]; rc[dst] = r[src]
        } } }
        // Erosion treats the crop edge like the image edge only where it is the image edge: the one-voxel margin is
        // background elsewhere, so borders match those of the full grid.
        let pb = border(pc, dims: bd), rb = border(rc, dims: bd)
        let toR = DistanceTransform.squaredDistance(toFeatures: rb, dims: bd, spacing: spacing)
        let toP = DistanceTransform.squaredDistance(toFeatures: pb, dims: bd, spacing: spacing)
        var dPR: [Double] = [], dRP: [Double] = []
        for i in 0..<pb.count {
            if pb[i] { dPR.append(toR[i].squareRoot()) }
            if rb[i] { dRP.append(toP[i].squareRoot()) }
        }
        return (dPR.sorted(), dRP.sorted())
    }
}

/// Mean, standard deviation (population) and median of a metric over cases, with NaNs counted and left out, and
/// infinities counted and kept out of mean/std (they are reported, not hidden).
public struct MetricSummary: Sendable, Equatable, Codable {
    public var mean: Double
    public var std: Double
    public var median: Double
    /// Finite values used.
    public var count: Int
    public var nanCount: Int
    public var infiniteCount: Int

    public init(_ values: [Double]) {
        let finite = values.filter { $0.isFinite }.sorted()
        nanCount = values.filter { $0.isNaN }.count
        infiniteCount = values.filter { $0.isInfinite }.count
        count = finite.count
        if finite.isEmpty { mean = .nan; std = .nan; median = .nan; return }
        mean = finite.reduce(0, +) / Double(finite.count)
        let m = mean
        std = (finite.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(finite.count)).squareRoot()
        median = SegmentationMetrics.percentile(sorted: finite, 50)
    }

    public static func == (a: MetricSummary, b: MetricSummary) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return same(a.mean, b.mean) && same(a.std, b.std) && same(a.median, b.median) && a.count == b.count
            && a.nanCount == b.nanCount && a.infiniteCount == b.infiniteCount
    }
}
