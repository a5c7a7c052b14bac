import Foundation

/// Orientation of voxel axes relative to RAS+ world axes, as NiBabel's `io_orientation` / `aff2axcodes`.
///
/// For each voxel axis, `axes[i]` is the world axis (0 = x, 1 = y, 2 = z) it runs closest to and `flips[i]` is
/// +1 when it runs toward R/A/S and -1 toward L/P/I. The closest axis is found on the polar factor of the
/// rotation-zoom matrix (the nearest orthogonal matrix), choosing greedily by largest absolute cosine.
public struct Orientation: Sendable, Equatable, Hashable, Codable {
    public var axes: [Int]
    public var flips: [Int]

    public init(axes: [Int], flips: [Int]) {
        self.axes = axes
        self.flips = flips
    }

    /// The letters for the positive direction of each world axis, and their opposites.
    static let positive: [Character] = ["R", "A", "S"]
    static let negative: [Character] = ["L", "P", "I"]

    /// Orientation codes such as "RAS" or "LPS" (NiBabel's `aff2axcodes`); "?" where an axis is degenerate.
    public var codes: String {
        String(zip(axes, flips).map { ax, f in ax < 0 ? "?" : (f > 0 ? Orientation.positive[ax] : Orientation.negative[ax]) })
    }

    /// Parses axis codes ("RAS", "LPI", ...). Returns nil unless each world axis appears exactly once.
    public init?(codes: String) {
        let letters = Array(codes.uppercased())
        guard letters.count == 3 else { return nil }
        var axes: [Int] = []
        var flips: [Int] = []
        for ch in letters {
            if let i = Orientation.positive.firstIndex(of: ch) { axes.append(i); flips.append(1) }
            else if let i = Orientation.negative.firstIndex(of: ch) { axes.append(i); flips.append(-1) }
            else { return nil }
        }
        guard Set(axes).count == 3 else { return nil }
        self.axes = axes
        self.flips = flips
    }

    /// NiBabel's `io_orientation(affine)`.
    public init(affine: Affine) {
        var rs = [[Double]](repeating: [0, 0, 0], count: 3)   // rs[row][col]
        let zooms = affine.spacing.map { $0 == 0 ? 1 : $0 }
        for r in 0..<3 { for c in 0..<3 { rs[r][c] = affine[r, c] / zooms[c] } }
        var r = Orientation.polarFactor(rs)
        var axes = [Int](repeating: -1, count: 3)
        var flips = [Int](repeating: 0, count: 3)
        for inAxis in 0..<3 {
            let col = (0..<3).map { r[$0][inAxis] }
            if col.allSatisfy({ abs($0) <= 1e-8 }) { continue }
            var best = 0
            for k in 1..<3 where abs(col[k]) > abs(col[best]) { best = k }
            axes[inAxis] = best
            flips[inAxis] = col[best] < 0 ? -1 : 1
            for c in 0..<3 { r[best][c] = 0 }
        }
        self.axes = axes
        self.flips = flips
    }

    /// The orthogonal polar factor U V^T of a 3x3 matrix (Newton iteration X <- (X + X^-T) / 2), or the matrix
    /// itself when it is singular (NiBabel then keeps only the non-degenerate directions).
    static func polarFactor(_ a: [[Double]]) -> [[Double]] {
        var x = a
        for _ in 0..<100 {
            guard let inv = invert3(x) else { return a }
            var next = x
            var delta = 0.0
            for r in 0..<3 {
                for c in 0..<3 {
                    next[r][c] = 0.5 * (x[r][c] + inv[c][r])
                    delta = max(delta, abs(next[r][c] - x[r][c]))
                }
            }
            x = next
            if delta < 1e-14 { break }
        }
        return x
    }

    static func invert3(_ a: [[Double]]) -> [[Double]]? {
        let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        if abs(det) < 1e-12 { return nil }
        var out = [[Double]](repeating: [0, 0, 0], count: 3)
        for r in 0..<3 {
            for c in 0..<3 {
                let r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3
                out[r][c] = (a[r1][c1] * a[r2][c2] - a[r1][c2] * a[r2][c1]) / det
            }
        }
        return out
    }
}

extension Affine {
    /// Orientation codes of the voxel axes, e.g. "RAS" or "LPS" (NiBabel's `aff2axcodes`).
    public var orientationCodes: String { Orientation(affine: self).codes }
}
