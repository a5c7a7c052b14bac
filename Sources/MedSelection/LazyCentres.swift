import Foundation
import MedCompute

/// Dot product of two Float32 vectors of length d (MedCompute's kernel, at the machine's vector width): the lazy
/// greedy's row refreshes.
@inline(__always) func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float { Compute.dot(a, b, d) }

/// Every pool row's squared distance to its nearest centre, kept lazily for the greedy strategies (CoreSet, XSSR,
/// acquisition) so that a pick does not cost a pass over the whole N x D matrix.
///
/// `bound[i]` is the squared distance from row i to the nearest centre among those it has been compared with: an upper
/// bound on the true value, exact once the row is refreshed against the centres added since. New centres are queued;
/// every `batch` centres (or when some bound is still +inf) all rows are refreshed at once with one SGEMM
/// (N x batch x D, compute-bound instead of `batch` memory-bound passes). Between those, a greedy step refreshes only
/// the rows that could win it: the largest bounds (a max-heap, for the farthest row) or the largest score bounds (a scan
/// of the N scalars, for scores increasing in the distance). Results are exact — the same picks as recomputing every
/// distance after every pick — because a refreshed row is accepted only when no other row's bound can beat it.
struct LazyCentres {
    let pool: Embeddings
    let norms: [Float]
    let batch: Int
    private(set) var bound: [Float]
    /// Number of queued centres row i has been compared with.
    private var seen: [Int32]
    private(set) var taken: [Bool]
    private(set) var centreCount = 0
    private var queue: [Float] = []
    private var queueNorms: [Float] = []
    private var queued = 0
    private var heapKey: [Float] = []
    private var heapRow: [Int32] = []
    private var needsFullRefresh = true

    init(_ pool: Embeddings, batch: Int = 256) {
        self.pool = pool
        self.batch = batch
        norms = pool.squaredNorms
        bound = [Float](repeating: .infinity, count: pool.count)
        seen = [Int32](repeating: 0, count: pool.count)
        taken = [Bool](repeating: false, count: pool.count)
        queue.reserveCapacity(batch * pool.dimensions)
    }

    var hasCentre: Bool { centreCount > 0 }

    /// Makes row c a centre (and takes it out of the candidates).
    mutating func add(_ c: Int) {
        enqueue(c)
        if queued >= batch || needsFullRefresh { refreshAll() }
    }

    /// Adds many centres with one refresh at the end (warm start from a labeled set).
    mutating func add(_ cs: [Int]) {
        for c in cs {
            enqueue(c)
            if queued >= batch { refreshAll() }
        }
        if queued > 0 { refreshAll() }
    }

    /// Marks row c taken and queues it as a centre for the next refresh.
    private mutating func enqueue(_ c: Int) {
        let d = pool.dimensions
        taken[c] = true
        bound[c] = 0
        centreCount += 1
        pool.values.withUnsafeBufferPointer { queue.append(contentsOf: $0[(c * d)..<((c + 1) * d)]) }
        queueNorms.append(norms[c])
        queued += 1
    }

    /// Compares every row with the queued centres (SGEMM in row blocks), empties the queue and rebuilds the heap.
    mutating func refreshAll() {
        let n = pool.count, d = pool.dimensions, r = queued
        if r > 0 {
            let blockRows = max(1, min(n, (1 << 22) / r))
            var block = [Float](repeating: 0, count: blockRows * r)
            var start = 0
            while start < n {
                let m = min(blockRows, n - start)
                pool.values.withUnsafeBufferPointer { v in
                    queue.withUnsafeBufferPointer { q in
                        block.withUnsafeMutableBufferPointer { b in
                            productNT(m: m, n: r, d: d, alpha: -2, a: v.baseAddress! + start * d, b: q.baseAddress!, c: b.baseAddress!)
                        }
                    }
                }
                block.withUnsafeBufferPointer { bb in
                    bound.withUnsafeMutableBufferPointer { bd in
                        norms.withUnsafeBufferPointer { nb in
                            queueNorms.withUnsafeBufferPointer { qn in
                                let (bp, bdp, nbp, qnp) = (bb.baseAddress!, bd.baseAddress!, nb.baseAddress!, qn.baseAddress!)
                                concurrentRows(m) { row in
                                    let i = start + row
                                    var best = bdp[i]
                                    let line = bp + row * r, ni = nbp[i]
                                    for c in 0..<r { best = min(best, max(0, line[c] + ni + qnp[c])) }
                                    bdp[i] = best
                                }
                            }
                        }
                    }
                }
                start += m
            }
        }
        queue.removeAll(keepingCapacity: true)
        queueNorms.removeAll(keepingCapacity: true)
        queued = 0
        seen.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        needsFullRefresh = false
        rebuildHeap()
    }

    /// Row i's exact squared distance to the nearest centre (compares it with the queued centres it has not seen).
    mutating func exact(_ i: Int) -> Float {
        let s = Int(seen[i])
        guard s < queued else { return bound[i] }
        let d = pool.dimensions
        var best = bound[i]
        pool.values.withUnsafeBufferPointer { v in
            queue.withUnsafeBufferPointer { q in
                let row = v.baseAddress! + i * d
                for c in s..<queued {
                    let dot = dotProduct(row, q.baseAddress! + c * d, d)
                    best = min(best, max(0, norms[i] - 2 * dot + queueNorms[c]))
                }
            }
        }
        bound[i] = best
        seen[i] = Int32(queued)
        return best
    }

    // MARK: farthest row (max-heap of bounds; ties to the lower row)

    @inline(__always) private static func above(_ k1: Float, _ r1: Int32, _ k2: Float, _ r2: Int32) -> Bool {
        k1 > k2 || (k1 == k2 && r1 < r2)
    }

    private mutating func rebuildHeap() {
        heapKey.removeAll(keepingCapacity: true)
        heapRow.removeAll(keepingCapacity: true)
        for i in 0..<pool.count where !taken[i] { heapKey.append(bound[i]); heapRow.append(Int32(i)) }
        var p = heapKey.count / 2 - 1
        while p >= 0 { siftDown(p); p -= 1 }
    }

    private mutating func siftDown(_ start: Int) {
        var p = start
        let n = heapKey.count
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < n && Self.above(heapKey[l], heapRow[l], heapKey[m], heapRow[m]) { m = l }
            if r < n && Self.above(heapKey[r], heapRow[r], heapKey[m], heapRow[m]) { m = r }
            if m == p { return }
            heapKey.swapAt(p, m); heapRow.swapAt(p, m)
            p = m
        }
    }

    private mutating func push(_ key: Float, _ row: Int32) {
        heapKey.append(key); heapRow.append(row)
        var c = heapKey.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard Self.above(heapKey[c], heapRow[c], heapKey[p], heapRow[p]) else { return }
            heapKey.swapAt(c, p); heapRow.swapAt(c, p)
            c = p
        }
    }

    private mutating func pop() -> (Float, Int32) {
        let top = (heapKey[0], heapRow[0])
        let last = heapKey.count - 1
        heapKey.swapAt(0, last); heapRow.swapAt(0, last)
        heapKey.removeLast(); heapRow.removeLast()
        if !heapKey.isEmpty { siftDown(0) }
        return top
    }

    /// The candidate farthest from every centre and its squared distance (ties: the lower row). Needs a centre and a
    /// candidate left.
    mutating func farthest() -> (index: Int, squared: Float) {
        precondition(hasCentre, "farthest() needs a centre")
        while true {
            precondition(!heapKey.isEmpty, "farthest() needs a candidate left")
            let (_, row) = pop()
            let i = Int(row)
            if taken[i] { continue }
            let v = exact(i)
            if heapKey.isEmpty || Self.above(v, row, heapKey[0], heapRow[0]) {
                push(v, row)
                return (i, v)
            }
            push(v, row)
        }
    }

    // MARK: best score a[i] + b[i] * distance / scale (b >= 0)

    /// The candidate with the highest a[i] + b[i] · √(squared distance) / scale (ties: the lower row), with b ≥ 0 and
    /// scale > 0: the score only grows with the distance, so bounds give score bounds.
    mutating func best(a: [Float], b: [Float], scale: Float) -> (index: Int, score: Float, distance: Float) {
        let n = pool.count
        let inv = 1 / scale
        let keep = 32
        let chunks = n >= 65_536 ? 8 : 1
        // Each chunk keeps its `keep` largest score bounds, sorted descending, and its smallest kept bound.
        var lists = [[(Float, Int32)]](repeating: [], count: chunks)
        bound.withUnsafeBufferPointer { bd in
            a.withUnsafeBufferPointer { ab in
                b.withUnsafeBufferPointer { bb in
                    taken.withUnsafeBufferPointer { tb in
                        nonisolated(unsafe) let (bdp, ap, bp, tp) = (bd.baseAddress!, ab.baseAddress!, bb.baseAddress!, tb.baseAddress!)
                        lists.withUnsafeMutableBufferPointer { lb in
                            nonisolated(unsafe) let lp = lb.baseAddress!
                            let work: @Sendable (Int) -> Void = { c in
                                var top: [(Float, Int32)] = []
                                top.reserveCapacity(keep + 1)
                                var floor = -Float.infinity
                                for i in (c * n / chunks)..<((c + 1) * n / chunks) where !tp[i] {
                                    let u = ap[i] + bp[i] * bdp[i].squareRoot() * inv
                                    if top.count == keep && !(u > floor) { continue }
                                    var p = top.count
                                    top.append((u, Int32(i)))
                                    while p > 0 && top[p - 1].0 < u { top[p] = top[p - 1]; p -= 1 }
                                    top[p] = (u, Int32(i))
                                    if top.count > keep { top.removeLast() }
                                    if top.count == keep { floor = top[keep - 1].0 }
                                }
                                lp[c] = top
                            }
                            parallelFor(chunks, work)
                        }
                    }
                }
            }
        }
        // Rows left out of a full chunk list have bounds <= that list's smallest entry.
        var ceiling = -Float.infinity
        for l in lists where l.count == keep { ceiling = max(ceiling, l[keep - 1].0) }
        var candidates = lists.flatMap { $0 }
        candidates.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var bestRow = -1, bestScore = -Float.infinity, bestDist: Float = 0
        func consider(_ i: Int) {
            let dist = exact(i).squareRoot()
            let s = a[i] + b[i] * dist * inv
            if s > bestScore || (s == bestScore && i < bestRow) { bestScore = s; bestRow = i; bestDist = dist }
        }
        for (u, row) in candidates {
            if bestRow >= 0 && (u < bestScore || (u == bestScore && Int(row) > bestRow)) { break }
            consider(Int(row))
        }
        if ceiling >= bestScore {
            // Rows not in the kept lists may still win: refresh every row whose bound reaches the best score so far.
            for i in 0..<n where !taken[i] {
                let u = a[i] + b[i] * bound[i].squareRoot() * inv
                if u >= bestScore { consider(i) }
            }
        }
        return (bestRow, bestScore, bestDist)
    }

    /// Every row's exact squared distance to its nearest centre.
    mutating func distances() -> [Float] {
        if queued > 0 || needsFullRefresh { refreshAll() }
        return bound
    }
}
