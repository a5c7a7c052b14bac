import Foundation
internal import COpenBLAS
internal import CDNNL

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
        guard values.allSatisfy({ $0.isFinite }) else {
            throw SelectionError.invalidInput("embeddings contain NaN or infinite values")
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
        let rowsPerBlock = max(1, min(blockRows, queries.count))
        var block = [Float](repeating: 0, count: rowsPerBlock * n)
        var start = 0
        while start < queries.count {
            let m = min(rowsPerBlock, queries.count - start)
            queries.values.withUnsafeBufferPointer { q in
                targets.values.withUnsafeBufferPointer { t in
                    block.withUnsafeMutableBufferPointer { b in
                        // Large products: oneDNN's SGEMM (row-major) is markedly faster than Debian's OpenBLAS here.
                        // Small ones stay on OpenBLAS: oneDNN's OpenMP threads keep spinning after a call and slow the
                        // Dispatch work that follows (k-means, silhouette).
                        let large = Double(m) * Double(n) * Double(d) >= 6.7e7
                        let status = !large ? dnnl_runtime_error : dnnl_sgemm(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "T")), Int64(m), Int64(n), Int64(d), -2,
                                                q.baseAddress! + start * d, Int64(d), t.baseAddress!, Int64(d), 0, b.baseAddress!, Int64(n))
                        if status != dnnl_success {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(d), -2,
                                        q.baseAddress! + start * d, Int32(d), t.baseAddress!, Int32(d), 0, b.baseAddress!, Int32(n))
                        }
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

/// Exact k nearest neighbours by blocked distances (no N x N matrix).
public struct NearestNeighbors: Sendable {
    /// indices[i*k ..< (i+1)*k]: the k nearest targets of query i, nearest first.
    public let indices: [Int32]
    /// Euclidean distances matching `indices`.
    public let distances: [Float]
    public let k: Int

    /// The k nearest targets of every query; with `excludeSelf`, queries and targets are the same matrix and a row is
    /// not its own neighbour.
    public static func exact(queries: Embeddings, targets: Embeddings, k: Int, excludeSelf: Bool = false) throws -> NearestNeighbors {
        let available = targets.count - (excludeSelf ? 1 : 0)
        guard k >= 1, k <= available else {
            throw SelectionError.invalidInput("k = \(k) needs 1...\(available) neighbours")
        }
        var idx = [Int32](repeating: 0, count: queries.count * k)
        var dist = [Float](repeating: 0, count: queries.count * k)
        let n = targets.count
        let qn = queries.squaredNorms, tn = targets.squaredNorms
        BlockedDistances.forEachBlock(queries: queries, targets: targets, finish: false) { first, block in
            let rows = block.count / n
            idx.withUnsafeMutableBufferPointer { ib in
                dist.withUnsafeMutableBufferPointer { db in
                    tn.withUnsafeBufferPointer { tb in
                        let ip = ib.baseAddress!, dp = db.baseAddress!, tnp = tb.baseAddress!
                        concurrentRows(rows) { r in
                            let q = first + r
                            let row = block.baseAddress! + r * n
                            // The k smallest of −2 a·b + ||b||^2 (||a||^2 is the same for the whole row), kept sorted.
                            let bestD = UnsafeMutablePointer<Float>.allocate(capacity: k)
                            let bestI = UnsafeMutablePointer<Int32>.allocate(capacity: k)
                            defer { bestD.deallocate(); bestI.deallocate() }
                            bestD.initialize(repeating: .infinity, count: k)
                            bestI.initialize(repeating: -1, count: k)
                            var worst = Float.infinity
                            for c in 0..<n {
                                let v = row[c] + tnp[c]
                                if v >= worst || (excludeSelf && c == q) { continue }
                                var p = k - 1
                                while p > 0 && bestD[p - 1] > v { bestD[p] = bestD[p - 1]; bestI[p] = bestI[p - 1]; p -= 1 }
                                bestD[p] = v; bestI[p] = Int32(c)
                                worst = bestD[k - 1]
                            }
                            let a = qn[q]
                            for t in 0..<k { ip[q * k + t] = bestI[t]; dp[q * k + t] = max(0, bestD[t] + a).squareRoot() }
                        }
                    }
                }
            }
        }
        return NearestNeighbors(indices: idx, distances: dist, k: k)
    }
}

/// Splits `count` rows over the available cores.
func concurrentRows(_ count: Int, _ body: (Int) -> Void) {
    let workers = max(1, min(count, ProcessInfo.processInfo.activeProcessorCount * 4))
    if workers == 1 { for i in 0..<count { body(i) }; return }
    withoutActuallyEscaping(body) { escaping in
        nonisolated(unsafe) let run = escaping
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in (w * count / workers)..<((w + 1) * count / workers) { run(i) }
        }
    }
}
