import Foundation
import MedImage

/// The source model's view of a case, from its prediction alone (no label): for each predicted structure its size
/// in mm, how many pieces it is in, its boundary and compactness; and, from the softmax, the mean predictive entropy
/// and the disagreement between test-time-augmented predictions. The per-case facts behind "the model sees this site
/// differently" (issue "shift that matters"); every statistic has a hand-computed test.
public enum ModelView {
    /// One predicted structure (a label value) of one case.
    public struct Structure: Sendable, Equatable {
        public var label: Int
        /// Voxels (pixels) predicted as the label.
        public var voxels: Int
        /// Area in mm² for a 2-D image, volume in mm³ for a 3-D one.
        public var size: Double
        /// Face-connected pieces (4-neighbourhood in 2-D, 6 in 3-D).
        public var components: Int
        /// The largest piece's share of the voxels (1 for one piece).
        public var largestShare: Double
        /// Boundary length in mm (2-D: the pixel edges between the structure and the rest, times their length) or
        /// boundary area in mm² (3-D: voxel faces times their area). Counting faces follows the grid, so a diagonal
        /// edge is longer than a smooth contour would be (by up to √2 in 2-D).
        public var boundary: Double
        /// 2-D: 4π·area / perimeter² (1 for a disc, π/4 for a square by face counting); 3-D: 36π·volume² / surface³.
        public var compactness: Double
    }

    /// The structures of a predicted label map (first channel), one per non-zero label value present, by label.
    public static func structures(_ prediction: MedicalImage) -> [Structure] {
        let s = prediction.shape, n = s.x * s.y * s.z
        let sp = prediction.spacing
        let is2D = s.z == 1
        var values = Set<Int>()
        for v in prediction.voxels.prefix(n) where v != 0 { values.insert(Int(v)) }
        // Area of a face normal to axis a (the product of the other two spacings; in 2-D, the edge length).
        let face: [Double] = is2D ? [sp[1], sp[0], 0] : [sp[1] * sp[2], sp[0] * sp[2], sp[0] * sp[1]]
        let unit = is2D ? sp[0] * sp[1] : sp[0] * sp[1] * sp[2]
        return values.sorted().map { label in
            let f = Float(label)
            var count = 0, boundary = 0.0
            let strides = [1, s.x, s.x * s.y], extent = [s.x, s.y, s.z]
            for k in 0..<s.z { for j in 0..<s.y { for i in 0..<s.x {
                let v = (k * s.y + j) * s.x + i
                guard prediction.voxels[v] == f else { continue }
                count += 1
                let index = [i, j, k]
                for a in 0..<(is2D ? 2 : 3) {
                    for step in [-1, 1] {
                        let c = index[a] + step
                        if c < 0 || c >= extent[a] || prediction.voxels[v + step * strides[a]] != f { boundary += face[a] }
                    }
                }
            } } }
            let mask = prediction.binarized(labels: [f])
            let (_, sizes) = mask.connectedComponents(connectivity: .face)
            let size = Double(count) * unit
            let compactness = boundary > 0 ? (is2D ? 4 * .pi * size / (boundary * boundary) : 36 * .pi * size * size / (boundary * boundary * boundary)) : .nan
            return Structure(label: label, voxels: count, size: size, components: sizes.count,
                             largestShare: count > 0 ? Double(sizes.first ?? 0) / Double(count) : .nan, boundary: boundary, compactness: compactness)
        }
    }

    /// Mean over voxels of the predictive entropy −Σ p ln p (nats) of softmax probabilities stored class by class
    /// (`classes` planes of `probabilities.count / classes` voxels, as the U-Net's output).
    public static func meanEntropy(_ probabilities: [Float], classes: Int) -> Double {
        guard classes > 0, probabilities.count % classes == 0, !probabilities.isEmpty else { return .nan }
        let n = probabilities.count / classes
        var total = 0.0
        for v in 0..<n {
            for c in 0..<classes {
                let p = Double(probabilities[c * n + v])
                if p > 0 { total -= p * Foundation.log(p) }
            }
        }
        return total / Double(n)
    }

    /// How much test-time-augmented predictions disagree: 1 − the mean Dice of every augmented prediction's foreground
    /// (non-zero) with the plain prediction's; 0 when they agree everywhere, and when both are empty.
    public static func disagreement(_ plain: [Float], _ augmented: [[Float]]) -> Double {
        guard !augmented.isEmpty else { return .nan }
        let dice = augmented.map { other -> Double in
            var both = 0, a = 0, b = 0
            for (x, y) in zip(plain, other) {
                let (p, q) = (x != 0, y != 0)
                if p { a += 1 }
                if q { b += 1 }
                if p && q && x == y { both += 1 }
            }
            return a + b == 0 ? 1 : 2 * Double(both) / Double(a + b)
        }
        return 1 - dice.reduce(0, +) / Double(dice.count)
    }
}

extension ModelView {
    /// The mean over labels 1...labels of the Dice between two label maps of the same grid (a label absent from both
    /// counts 1): a prediction's Dice against a known label, as the Dice estimate is calibrated on.
    public static func meanDice(_ a: [Float], _ b: [Float], labels: Int) -> Double {
        guard labels > 0 else { return .nan }
        var both = [Int](repeating: 0, count: labels + 1), na = both, nb = both
        for (x, y) in zip(a, b) {
            let (p, q) = (Int(x), Int(y))
            if p > 0 && p <= labels { na[p] += 1 }
            if q > 0 && q <= labels { nb[q] += 1 }
            if p == q && p > 0 && p <= labels { both[p] += 1 }
        }
        var total = 0.0
        for l in 1...labels {
            let n = na[l] + nb[l]
            total += n == 0 ? 1 : 2 * Double(both[l]) / Double(n)
        }
        return total / Double(labels)
    }
}
