import Foundation
import MedCompute
import MedFoundation

/// N samples x D features, row-major Float32, with an id per row.
public struct Embeddings: Sendable {
    public let count: Int
    public let dimensions: Int
    /// Row-major values: row i is values[i*D ..< (i+1)*D].
    public let values: [Float]
    public let ids: [String]

    public init(values: [Float], count: Int, dimensions: Int, ids: [String]? = nil) throws {
        guard count > 0, dimensions > 0, values.count == count * dimensions else {
            throw SelectionError.invalidInput("embeddings need N x D values (N, D > 0); got \(values.count) for \(count) x \(dimensions)")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            let row = bad / dimensions
            let rowIds = ids.map { $0.count == count ? " (id \($0[row]))" : "" } ?? ""
            let nonFinite = values.lazy.filter { !$0.isFinite }.count
            throw SelectionError.invalidInput("row \(row)\(rowIds), column \(bad % dimensions) of the embeddings is \(values[bad]) (\(nonFinite) non-finite values in all); re-create the embeddings, or drop that case")
        }
        if let ids, ids.count != count {
            throw SelectionError.invalidInput("\(ids.count) ids for \(count) embedding rows")
        }
        self.count = count
        self.dimensions = dimensions
        self.values = values
        self.ids = ids ?? (0..<count).map(String.init)
    }

    /// Squared norm of every row.
    public var squaredNorms: [Float] {
        let d = dimensions
        return values.withUnsafeBufferPointer { v in
            (0..<count).map { i in
                var s: Float = 0
                let row = v.baseAddress! + i * d
                for j in 0..<d { s += row[j] * row[j] }
                return s
            }
        }
    }

    /// Rows `range` as a new matrix (ids kept).
    /// Squared Euclidean distance between rows a and b.
    public func distance2(_ a: Int, _ b: Int) -> Float {
        values.withUnsafeBufferPointer { v in
            var s: Float = 0
            let pa = v.baseAddress! + a * dimensions, pb = v.baseAddress! + b * dimensions
            // Σ (x − y)² directly (not via norms): exact zero for equal rows, no cancellation for nearby ones.
            for j in 0..<dimensions { let t = pa[j] - pb[j]; s += t * t }
            return s
        }
    }

    public func rows(_ indices: [Int]) -> Embeddings {
        var out = [Float](repeating: 0, count: indices.count * dimensions)
        for (r, i) in indices.enumerated() {
            for j in 0..<dimensions { out[r * dimensions + j] = values[i * dimensions + j] }
        }
        return try! Embeddings(values: out, count: indices.count, dimensions: dimensions, ids: indices.map { ids[$0] })
    }
}

/// Squared Euclidean distances computed in blocks of query rows with one SGEMM per block:
/// ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, clamped at 0.
public enum BlockedDistances {
    /// Rows of queries processed per SGEMM (a block of `blockRows` x N floats is the largest buffer).
    public static let defaultBlockRows = 1024

    /// Calls `body(firstQuery, block)` for consecutive query blocks; `block` holds (rows x targets.count) squared
    /// distances, row-major, valid only during the call.
    public static func forEachBlock(queries: Embeddings, targets: Embeddings, blockRows: Int = defaultBlockRows,
                                    _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        forEachBlock(queries: queries, targets: targets, blockRows: blockRows, finish: true, body)
    }

    /// With `finish` false the block holds −2 a·b only (callers that add the norms themselves, fused with their work).
    static func forEachBlock(queries: Embeddings, targets: Embeddings, blockRows: Int = defaultBlockRows, finish: Bool,
                             _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        precondition(queries.dimensions == targets.dimensions, "queries and targets differ in dimensions")
        let d = queries.dimensions, n = targets.count
        let qn = queries.squaredNorms, tn = targets.squaredNorms
        // At most 64 Mi floats (256 MB) per block, so a million targets still fit.
        let rowsPerBlock = max(1, min(blockRows, queries.count, max(16, (1 << 26) / max(1, n))))
        var block = [Float](repeating: 0, count: rowsPerBlock * n)
        var start = 0
        while start < queries.count {
            let m = min(rowsPerBlock, queries.count - start)
            queries.values.withUnsafeBufferPointer { q in
                targets.values.withUnsafeBufferPointer { t in
                    block.withUnsafeMutableBufferPointer { b in
                        productNT(m: m, n: n, d: d, alpha: -2, a: q.baseAddress! + start * d, b: t.baseAddress!, c: b.baseAddress!)
                        if finish {
                            let base = b.baseAddress!
                            tn.withUnsafeBufferPointer { tb in
                                let tnp = tb.baseAddress!
                                concurrentRows(m) { r in
                                    let row = base + r * n
                                    let a = qn[start + r]
                                    for c in 0..<n { row[c] = max(0, row[c] + a + tnp[c]) }
                                }
                            }
                        }
                    }
                }
            }
            block.withUnsafeBufferPointer { body(start, UnsafeBufferPointer(rebasing: $0[0..<(m * n)])) }
            start += m
        }
    }
}

/// C (m x n) = alpha · A (m x d) · Bᵀ (B is n x d), all row-major and contiguous (``MedCompute/Compute``'s SGEMM).
func productNT(m: Int, n: Int, d: Int, alpha: Float, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
    Compute.sgemm(transB: true, m: m, n: n, k: d, alpha: alpha, a: a, lda: d, b: b, ldb: d, c: c, ldc: n)
}

/// Exact k nearest neighbours by blocked distances (no N x N matrix).
public struct NearestNeighbors: Sendable {
    /// indices[i*k ..< (i+1)*k]: the k nearest targets of query i, nearest first.
    public let indices: [Int32]
    /// Euclidean distances matching `indices`.
    public let distances: [Float]
    public let k: Int

    /// The k nearest targets of every query; with `excludeSelf`, queries and targets are the same matrix and a row is
    /// not its own neighbour.
    /// `progress` receives the fraction of queries done after every block.
    public static func exact(queries: Embeddings, targets: Embeddings, k: Int, excludeSelf: Bool = false,
                             progress: (@Sendable (Double) -> Void)? = nil) throws -> NearestNeighbors {
        let available = targets.count - (excludeSelf ? 1 : 0)
        guard k >= 1, k <= available else {
            throw SelectionError.invalidInput(available < 1 ? "nearest neighbours need at least \(excludeSelf ? 2 : 1) rows; the pool has \(targets.count)"
                : "\(k) nearest neighbours were asked for, but the pool has only \(available) other rows; lower k (e.g. --k \(max(1, available)))")
        }
        // Blocks of up to 1024 queries x 65,536 targets (at most 256 MB): the SGEMM stays efficient for any N, and each
        // query's k best so far (of −2 a·b + ||b||², its own ||a||² added at the end) are merged tile by tile.
        let nq = queries.count, n = targets.count, d = queries.dimensions
        var idx = [Int32](repeating: -1, count: nq * k)
        var dist = [Float](repeating: .infinity, count: nq * k)
        let qn = queries.squaredNorms, tn = targets.squaredNorms
        let rowsPerBlock = min(1024, nq), tile = min(n, 65_536)
        var block = [Float](repeating: 0, count: rowsPerBlock * tile)
        queries.values.withUnsafeBufferPointer { qv in
        targets.values.withUnsafeBufferPointer { tv in
        idx.withUnsafeMutableBufferPointer { ib in
        dist.withUnsafeMutableBufferPointer { db in
        tn.withUnsafeBufferPointer { tb in
        block.withUnsafeMutableBufferPointer { bb in
            let ip = ib.baseAddress!, dp = db.baseAddress!, tnp = tb.baseAddress!, bp = bb.baseAddress!
            var first = 0
            while first < nq {
                let m = min(rowsPerBlock, nq - first)
                var t0 = 0
                while t0 < n {
                    let tc = min(tile, n - t0)
                    productNT(m: m, n: tc, d: d, alpha: -2, a: qv.baseAddress! + first * d, b: tv.baseAddress! + t0 * d, c: bp)
                    concurrentRows(m) { r in
                        let q = first + r
                        let row = bp + r * tc
                        let bestD = dp + q * k, bestI = ip + q * k
                        var worst = bestD[k - 1]
                        for c in 0..<tc {
                            let v = row[c] + tnp[t0 + c]
                            if v >= worst || (excludeSelf && t0 + c == q) { continue }
                            worst = insertBest(v, Int32(t0 + c), bestD, bestI, k)
                        }
                    }
                    t0 += tc
                }
                for q in first..<(first + m) {
                    for t in 0..<k { dp[q * k + t] = max(0, dp[q * k + t] + qn[q]).squareRoot() }
                }
                first += m
                progress?(Double(first) / Double(nq))
            }
        }
        }
        }
        }
        }
        }
        return NearestNeighbors(indices: idx, distances: dist, k: k)
    }
}

/// Puts (v, index) into the ascending k-best lists `bestD`/`bestI` (v must beat the last entry) and returns the new
/// worst distance: the merge step of every k-nearest search here.
@inline(__always) func insertBest(_ v: Float, _ index: Int32, _ bestD: UnsafeMutablePointer<Float>, _ bestI: UnsafeMutablePointer<Int32>,
                                  _ k: Int) -> Float {
    var p = k - 1
    while p > 0 && bestD[p - 1] > v { bestD[p] = bestD[p - 1]; bestI[p] = bestI[p - 1]; p -= 1 }
    bestD[p] = v; bestI[p] = index
    return bestD[k - 1]
}

/// The first `count` of 0..<n in a seeded partial Fisher-Yates shuffle (in shuffle order): a sample without
/// replacement that draws `count` numbers from the generator.
func seededSample(_ n: Int, count: Int, seed: UInt64) -> [Int] {
    var g = SplitMix64(seed: seed)
    var order = Array(0..<n)
    for i in 0..<min(count, n) { order.swapAt(i, i + Int(g.next() % UInt64(n - i))) }
    return Array(order.prefix(count))
}

/// Runs body(row) for every row over the cores (``MedCompute/parallelRanges(_:chunk:_:)``, a few ranges per thread).
func concurrentRows(_ count: Int, _ body: (Int) -> Void) {
    let chunk = max(1, count / (Compute.threads * 4))
    parallelRanges(count, chunk: chunk) { range in for i in range { body(i) } }
}
