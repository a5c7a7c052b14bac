import Foundation

/// out[i] = row_i · v for a row-major N x D matrix: the memory-bound matrix-vector product of every greedy step
/// (k-center, XSSR, acquisition). SIMD over D, rows split over the cores; measured faster than Debian's OpenBLAS 0.3.21
/// SGEMV on this processor (it picks AVX2 kernels; see Docs/performance.md).
enum RowDots {
    static func compute(_ matrix: UnsafePointer<Float>, rows n: Int, columns d: Int, vector: UnsafePointer<Float>,
                        into out: UnsafeMutablePointer<Float>) {
        let chunks = n >= 4096 ? max(1, ProcessInfo.processInfo.activeProcessorCount) * 4 : 1
        nonisolated(unsafe) let (matrix, vector, out) = (matrix, vector, out)
        let body: @Sendable (Int) -> Void = { (c: Int) in
            let lo = c * n / chunks, hi = (c + 1) * n / chunks
            let wide = d / 16 * 16
            for i in lo..<hi {
                let row = matrix + i * d
                var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
                var j = 0
                while j + 32 <= wide {
                    acc0 += UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self) * UnsafeRawPointer(vector + j).loadUnaligned(as: SIMD16<Float>.self)
                    acc1 += UnsafeRawPointer(row + j + 16).loadUnaligned(as: SIMD16<Float>.self) * UnsafeRawPointer(vector + j + 16).loadUnaligned(as: SIMD16<Float>.self)
                    j += 32
                }
                while j + 16 <= wide {
                    acc0 += UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self) * UnsafeRawPointer(vector + j).loadUnaligned(as: SIMD16<Float>.self)
                    j += 16
                }
                var s = (acc0 + acc1).sum()
                while j < d { s += row[j] * vector[j]; j += 1 }
                out[i] = s
            }
        }
        if chunks == 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { body($0) }
    }
}

/// The running "distance to the nearest centre" of every pool row, shared by the greedy strategies.
struct NearestCentreDistances {
    let pool: Embeddings
    let norms: [Float]
    /// Squared distance of each row to its nearest centre so far (+inf before the first).
    var minD: [Float]
    var taken: [Bool]
    private var dots: [Float]

    init(_ pool: Embeddings) {
        self.pool = pool
        norms = pool.squaredNorms
        minD = [Float](repeating: .infinity, count: pool.count)
        taken = [Bool](repeating: false, count: pool.count)
        dots = [Float](repeating: 0, count: pool.count)
    }

    mutating func add(_ c: Int) {
        let n = pool.count, d = pool.dimensions
        taken[c] = true
        pool.values.withUnsafeBufferPointer { v in
            dots.withUnsafeMutableBufferPointer { out in
                RowDots.compute(v.baseAddress!, rows: n, columns: d, vector: v.baseAddress! + c * d, into: out.baseAddress!)
            }
        }
        let cn = norms[c]
        minD.withUnsafeMutableBufferPointer { m in
            dots.withUnsafeBufferPointer { dt in
                norms.withUnsafeBufferPointer { nb in
                    for i in 0..<n { m[i] = min(m[i], max(0, nb[i] - 2 * dt[i] + cn)) }
                }
            }
        }
        minD[c] = 0
    }
}
