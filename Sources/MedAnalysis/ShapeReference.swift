import Foundation

/// Reverse classification accuracy with a moment alignment (after Valindria et al., IEEE TMI 2017, atlas variant): a
/// predicted label map is compared with the labeled reference cases' masks, each brought into a canonical frame
/// (per axis: the foreground's centroid at the centre and ±2.5 standard deviations of its extent across the grid), and
/// the best Dice over the references estimates how plausible the prediction's shape is. A prediction shaped like some
/// real structure scores high; a fragmented, partial or empty one scores low. No registration beyond the moments.
public struct ShapeReferences: Sendable {
    /// The canonical grid: `side` x `side` in-plane, `depth` slices for volumes (1 for 2-D images).
    public let side: Int, depth: Int
    /// Foreground labels compared (1...labels).
    public let labels: Int
    private var masks: [(id: String, voxels: [UInt8], counts: [Int])] = []

    public init(side: Int = 48, depth: Int = 16, labels: Int) { self.side = side; self.depth = depth; self.labels = labels }

    public var count: Int { masks.count }

    /// A label map (x fastest, then y, then z; values 0...labels) in the canonical frame: per axis, the index of the
    /// canonical sample u ∈ [−2.5, 2.5] is centroid + u·sd of the foreground's indices along that axis (nearest
    /// voxel, outside the map 0). An empty map stays empty. A 2-D map (z = 1) gives a 2-D frame.
    public func canonical(_ map: [Float], x nx: Int, y ny: Int, z nz: Int) -> [UInt8] {
        let d = nz == 1 ? 1 : depth
        var out = [UInt8](repeating: 0, count: side * side * d)
        var sum = [0.0, 0.0, 0.0], sq = [0.0, 0.0, 0.0], n = 0.0
        for k in 0..<nz { for j in 0..<ny { for i in 0..<nx where map[(k * ny + j) * nx + i] != 0 {
            let p = [Double(i), Double(j), Double(k)]
            for a in 0..<3 { sum[a] += p[a]; sq[a] += p[a] * p[a] }
            n += 1
        } } }
        guard n > 0 else { return out }
        let centre = sum.map { $0 / n }
        let sd = (0..<3).map { max((sq[$0] / n - centre[$0] * centre[$0]).squareRoot(), 0.5) }
        func source(_ c: Int, _ count: Int, axis: Int, extent: Int) -> Int? {
            let u = count == 1 ? 0 : -2.5 + 5 * Double(c) / Double(count - 1)
            let v = Int((centre[axis] + u * sd[axis]).rounded())
            return v >= 0 && v < extent ? v : nil
        }
        let xs = (0..<side).map { source($0, side, axis: 0, extent: nx) }, ys = (0..<side).map { source($0, side, axis: 1, extent: ny) }
        let zs = (0..<d).map { nz == 1 ? 0 : source($0, d, axis: 2, extent: nz) }
        for k in 0..<d { guard let sk = zs[k] else { continue }
            for j in 0..<side { guard let sj = ys[j] else { continue }
                for i in 0..<side { guard let si = xs[i] else { continue }
                    let v = map[(sk * ny + sj) * nx + si]
                    out[(k * side + j) * side + i] = v > 0 && v <= Float(labels) ? UInt8(v) : 0
                }
            }
        }
        return out
    }

    /// Adds a labeled case's mask (as ``canonical(_:x:y:z:)`` maps it).
    public mutating func add(id: String, map: [Float], x: Int, y: Int, z: Int) {
        let c = canonical(map, x: x, y: y, z: z)
        masks.append((id, c, Self.counts(c, labels: labels)))
    }

    static func counts(_ c: [UInt8], labels: Int) -> [Int] {
        var n = [Int](repeating: 0, count: labels + 1)
        for v in c { n[Int(v)] += 1 }
        return n
    }

    /// The best mean Dice (over labels 1...labels; a label absent from both counts 1) between a canonical map and the
    /// references of the same dimensionality, the reference with id `excluding` left out (a case is not its own
    /// reference). NaN without references.
    public func bestDice(_ canonical: [UInt8], excluding: String? = nil) -> Double {
        let mine = Self.counts(canonical, labels: labels)
        var best = -Double.infinity
        var both = [Int](repeating: 0, count: labels + 1)
        for r in masks where r.id != excluding && r.voxels.count == canonical.count {
            for l in both.indices { both[l] = 0 }
            for (a, b) in zip(canonical, r.voxels) where a == b && a != 0 { both[Int(a)] += 1 }
            var total = 0.0
            for l in 1...labels {
                let s = mine[l] + r.counts[l]
                total += s == 0 ? 1 : 2 * Double(both[l]) / Double(s)
            }
            best = max(best, total / Double(labels))
        }
        return best.isFinite ? best : .nan
    }
}
