import Foundation

/// A 4x4 homogeneous transform, row-major, in Float64: voxel index (i, j, k) to world (x, y, z) in RAS+ mm.
///
/// `spacing` is the column norms of the 3x3 part (NiBabel's `voxel_sizes`), `origin` the translation column.
public struct Affine: Sendable, Equatable, Hashable, Codable {
    /// Row-major 4x4 elements.
    public var m: [Double]

    public init(rows: [[Double]]) {
        precondition(rows.count == 4 && rows.allSatisfy { $0.count == 4 }, "Affine needs 4 rows of 4 values")
        m = rows.flatMap { $0 }
    }

    public init(rowMajor: [Double]) {
        precondition(rowMajor.count == 16, "Affine needs 16 values, got \(rowMajor.count)")
        m = rowMajor
    }

    public static let identity = Affine(rowMajor: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])

    /// A diagonal affine with the given spacing and origin (axes aligned with RAS+).
    public static func diagonal(spacing: [Double], origin: [Double] = [0, 0, 0]) -> Affine {
        var a = Affine.identity
        for d in 0..<3 {
            a[d, d] = d < spacing.count ? spacing[d] : 1
            a[d, 3] = d < origin.count ? origin[d] : 0
        }
        return a
    }

    public subscript(row: Int, column: Int) -> Double {
        get { m[row * 4 + column] }
        set { m[row * 4 + column] = newValue }
    }

    public var rows: [[Double]] { (0..<4).map { r in Array(m[(r * 4)..<(r * 4 + 4)]) } }

    /// Voxel size along each voxel axis in mm (norm of each of the first three columns).
    public var spacing: [Double] {
        (0..<3).map { c in (0..<3).reduce(0.0) { $0 + self[$1, c] * self[$1, c] }.squareRoot() }
    }

    /// World position of voxel (0, 0, 0) in mm.
    public var origin: [Double] { [self[0, 3], self[1, 3], self[2, 3]] }

    /// Unit direction cosines: column c is the world direction of voxel axis c (zero columns stay zero).
    public var directions: [[Double]] {
        let s = spacing
        return (0..<3).map { c in (0..<3).map { r in s[c] > 0 ? self[r, c] / s[c] : 0 } }
    }

    public static func * (a: Affine, b: Affine) -> Affine {
        var out = [Double](repeating: 0, count: 16)
        for r in 0..<4 {
            for c in 0..<4 {
                var s = 0.0
                for k in 0..<4 { s += a.m[r * 4 + k] * b.m[k * 4 + c] }
                out[r * 4 + c] = s
            }
        }
        return Affine(rowMajor: out)
    }

    /// Maps a voxel coordinate (continuous index) to world mm.
    public func apply(_ p: (Double, Double, Double)) -> (Double, Double, Double) {
        (self[0, 0] * p.0 + self[0, 1] * p.1 + self[0, 2] * p.2 + self[0, 3],
         self[1, 0] * p.0 + self[1, 1] * p.1 + self[1, 2] * p.2 + self[1, 3],
         self[2, 0] * p.0 + self[2, 1] * p.1 + self[2, 2] * p.2 + self[2, 3])
    }

    /// The inverse transform, or nil when the 3x3 part is singular.
    public var inverse: Affine? {
        // Gauss-Jordan on the 4x4 with partial pivoting.
        var a = m
        var inv = Affine.identity.m
        for col in 0..<4 {
            var pivot = col
            for r in col..<4 where abs(a[r * 4 + col]) > abs(a[pivot * 4 + col]) { pivot = r }
            if abs(a[pivot * 4 + col]) < 1e-300 { return nil }
            if pivot != col {
                for k in 0..<4 {
                    a.swapAt(pivot * 4 + k, col * 4 + k)
                    inv.swapAt(pivot * 4 + k, col * 4 + k)
                }
            }
            let d = a[col * 4 + col]
            for k in 0..<4 { a[col * 4 + k] /= d; inv[col * 4 + k] /= d }
            for r in 0..<4 where r != col {
                let f = a[r * 4 + col]
                if f == 0 { continue }
                for k in 0..<4 {
                    a[r * 4 + k] -= f * a[col * 4 + k]
                    inv[r * 4 + k] -= f * inv[col * 4 + k]
                }
            }
        }
        return Affine(rowMajor: inv)
    }

    /// Largest absolute element-wise difference to another affine.
    public func maxAbsDifference(_ other: Affine) -> Double {
        zip(m, other.m).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Determinant of the 3x3 rotation-zoom part (negative for a left-handed voxel frame).
    public var determinant3: Double {
        self[0, 0] * (self[1, 1] * self[2, 2] - self[1, 2] * self[2, 1])
            - self[0, 1] * (self[1, 0] * self[2, 2] - self[1, 2] * self[2, 0])
            + self[0, 2] * (self[1, 0] * self[2, 1] - self[1, 1] * self[2, 0])
    }
}
