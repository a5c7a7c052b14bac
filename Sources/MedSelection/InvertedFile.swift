import Foundation
import MedCompute
import MedFoundation

/// Approximate k nearest neighbours for pools too large for the exact search: an inverted file (FAISS's IVF-Flat,
/// Jégou et al., TPAMI 2011). The targets are split into `lists` cells by k-means (Lloyd iterations on a sample of the
/// targets, seeded); a query is compared only with the targets of its `probes` nearest cells, with exact distances, so
/// every neighbour found is a true distance and only some true neighbours can be missed. The work runs cell by cell:
/// the queries that probe a cell against the cell's targets, one SGEMM per block, merged into each query's k best.
///
/// How many cells to probe is measured, not guessed: ``NearestNeighbors/approximate(queries:targets:k:excludeSelf:settings:progress:)``
/// compares a seeded sample of queries with the exact search and doubles the probes until the sample's recall
/// (the share of the exact k neighbours found) reaches the target, then bisects twice between the last two settings;
/// the recall is reported with the result.
struct InvertedFile {
    let targets: Embeddings
    let lists: Int
    /// lists x D, row-major.
    let centroids: [Float]
    let centroidNorms: [Float]
    /// The target rows of every cell, ascending.
    let members: [[Int32]]

    init(targets: Embeddings, lists wanted: Int, iterations: Int = 10, seed: UInt64) {
        let n = targets.count, d = targets.dimensions
        let lists = max(1, min(wanted, n))
        // Training sample: up to 64 rows per cell (FAISS warns below 39), drawn without replacement.
        let sample = seededSample(n, count: min(n, 64 * lists), seed: seed)
        var centroids = [Float](repeating: 0, count: lists * d)
        for c in 0..<lists { for j in 0..<d { centroids[c * d + j] = targets.values[sample[c] * d + j] } }
        let sampleRows = targets.rows(sample)
        for _ in 0..<iterations {
            let labels = Self.nearest(sampleRows, centroids: centroids, norms: Self.norms(centroids, d), lists: lists)
            var sums = [Double](repeating: 0, count: lists * d), counts = [Int](repeating: 0, count: lists)
            for (r, c) in labels.enumerated() {
                counts[Int(c)] += 1
                for j in 0..<d { sums[Int(c) * d + j] += Double(sampleRows.values[r * d + j]) }
            }
            for c in 0..<lists where counts[c] > 0 {
                for j in 0..<d { centroids[c * d + j] = Float(sums[c * d + j] / Double(counts[c])) }
            }
            // An empty cell keeps its centre (a sample row): it stays valid, merely small.
        }
        self.targets = targets
        self.lists = lists
        self.centroids = centroids
        self.centroidNorms = Self.norms(centroids, d)
        var members = [[Int32]](repeating: [], count: lists)
        for (i, c) in Self.nearest(targets, centroids: centroids, norms: centroidNorms, lists: lists).enumerated() { members[Int(c)].append(Int32(i)) }
        self.members = members
    }

    static func norms(_ m: [Float], _ d: Int) -> [Float] {
        (0..<(m.count / d)).map { r in var s: Float = 0; for j in 0..<d { s += m[r * d + j] * m[r * d + j] }; return s }
    }

    /// The nearest centroid of every row.
    static func nearest(_ x: Embeddings, centroids: [Float], norms: [Float], lists: Int) -> [Int32] {
        probes(x, rows: nil, centroids: centroids, norms: norms, lists: lists, count: 1)
    }

    /// The `count` nearest centroids of each row of `x` (or of `rows` of it), nearest first: rows x count.
    static func probes(_ x: Embeddings, rows: [Int]?, centroids: [Float], norms: [Float], lists: Int, count p: Int) -> [Int32] {
        let d = x.dimensions, nq = rows?.count ?? x.count
        var out = [Int32](repeating: 0, count: nq * p)
        let blockRows = 2048
        var queries = [Float](repeating: 0, count: min(blockRows, nq) * d)
        var scores = [Float](repeating: 0, count: min(blockRows, nq) * lists)
        var first = 0
        while first < nq {
            let m = min(blockRows, nq - first)
            x.values.withUnsafeBufferPointer { xv in
                queries.withUnsafeMutableBufferPointer { qb in
                    for r in 0..<m {
                        let src = xv.baseAddress! + (rows?[first + r] ?? (first + r)) * d
                        (qb.baseAddress! + r * d).update(from: src, count: d)
                    }
                }
            }
            queries.withUnsafeBufferPointer { qb in centroids.withUnsafeBufferPointer { cb in scores.withUnsafeMutableBufferPointer { sb in
                productNT(m: m, n: lists, d: d, alpha: -2, a: qb.baseAddress!, b: cb.baseAddress!, c: sb.baseAddress!)
            } } }
            scores.withUnsafeBufferPointer { sb in out.withUnsafeMutableBufferPointer { ob in
                let sp = sb.baseAddress!, op = ob.baseAddress!
                concurrentRows(m) { r in
                    var bestD = [Float](repeating: .infinity, count: p), bestI = [Int32](repeating: 0, count: p)
                    bestD.withUnsafeMutableBufferPointer { db in bestI.withUnsafeMutableBufferPointer { ib in
                        var worst = Float.infinity
                        for c in 0..<lists {
                            let v = sp[r * lists + c] + norms[c]
                            if v >= worst { continue }
                            worst = insertBest(v, Int32(c), db.baseAddress!, ib.baseAddress!, p)
                        }
                    } }
                    for t in 0..<p { op[(first + r) * p + t] = bestI[t] }
                }
            } }
            first += m
        }
        return out
    }

    /// The k nearest targets of `queries` rows `rows` (all rows when nil) among the targets of their `probes` nearest
    /// cells; with `excludeSelf` (queries and targets the same matrix) a row is not its own neighbour. Rows of the
    /// result follow `rows`. Queries with fewer than k candidates keep +inf distances and index -1 in the tail.
    func search(_ queries: Embeddings, rows: [Int]?, k: Int, excludeSelf: Bool, probes p: Int,
                progress: (@Sendable (Double) -> Void)? = nil) -> NearestNeighbors {
        let d = queries.dimensions, nq = rows?.count ?? queries.count
        let p = min(p, lists)
        let probe = Self.probes(queries, rows: rows, centroids: centroids, norms: centroidNorms, lists: lists, count: p)
        // Which queries probe each cell.
        var askers = [[Int32]](repeating: [], count: lists)
        for q in 0..<nq { for t in 0..<p { askers[Int(probe[q * p + t])].append(Int32(q)) } }
        var idx = [Int32](repeating: -1, count: nq * k)
        var dist = [Float](repeating: .infinity, count: nq * k)
        let tn = targets.squaredNorms
        let blockRows = 1024
        var qbuf = [Float](), tbuf = [Float](), block = [Float]()
        var done = 0
        for cell in 0..<lists where !askers[cell].isEmpty && !members[cell].isEmpty {
            let cellRows = members[cell], tc = cellRows.count
            tbuf.removeAll(keepingCapacity: true)
            targets.values.withUnsafeBufferPointer { tv in
                for r in cellRows { tbuf.append(contentsOf: UnsafeBufferPointer(start: tv.baseAddress! + Int(r) * d, count: d)) }
            }
            let asking = askers[cell]
            var first = 0
            while first < asking.count {
                let m = min(blockRows, asking.count - first)
                qbuf.removeAll(keepingCapacity: true)
                queries.values.withUnsafeBufferPointer { qv in
                    for r in 0..<m {
                        let q = Int(asking[first + r])
                        qbuf.append(contentsOf: UnsafeBufferPointer(start: qv.baseAddress! + (rows?[q] ?? q) * d, count: d))
                    }
                }
                if block.count < m * tc { block = [Float](repeating: 0, count: m * tc) }
                qbuf.withUnsafeBufferPointer { qb in tbuf.withUnsafeBufferPointer { tb in block.withUnsafeMutableBufferPointer { bb in
                    productNT(m: m, n: tc, d: d, alpha: -2, a: qb.baseAddress!, b: tb.baseAddress!, c: bb.baseAddress!)
                } } }
                block.withUnsafeBufferPointer { bb in idx.withUnsafeMutableBufferPointer { ib in dist.withUnsafeMutableBufferPointer { db in
                    tn.withUnsafeBufferPointer { tnb in cellRows.withUnsafeBufferPointer { cr in asking.withUnsafeBufferPointer { ab in
                        let bp = bb.baseAddress!, ip = ib.baseAddress!, dp = db.baseAddress!, tnp = tnb.baseAddress!, crp = cr.baseAddress!
                        let ap = ab.baseAddress!
                        // Each query asks a cell once, so the rows of a block are distinct queries: no two threads
                        // touch the same query's list.
                        concurrentRows(m) { r in
                            let q = Int(ap[first + r])
                            let own = rows?[q] ?? q
                            let bestD = dp + q * k, bestI = ip + q * k
                            var worst = bestD[k - 1]
                            let row = bp + r * tc
                            for c in 0..<tc {
                                let t = Int(crp[c])
                                let v = row[c] + tnp[t]
                                if v >= worst || (excludeSelf && t == own) { continue }
                                worst = insertBest(v, Int32(t), bestD, bestI, k)
                            }
                        }
                    } } }
                } } }
                first += m
            }
            done += 1
            if done % 64 == 0 { progress?(Double(done) / Double(lists)) }
        }
        let qn = rows.map { r in let all = queries.squaredNorms; return r.map { all[$0] } } ?? queries.squaredNorms
        for q in 0..<nq { for t in 0..<k where dist[q * k + t].isFinite { dist[q * k + t] = max(0, dist[q * k + t] + qn[q]).squareRoot() } }
        return NearestNeighbors(indices: idx, distances: dist, k: k)
    }
}

extension NearestNeighbors {
    /// How the approximate search is set up.
    public struct ApproximateSettings: Sendable {
        /// Cells (nil: 2 √N rounded, FAISS's guideline of O(√N) lists).
        public var lists: Int? = nil
        /// Cells probed first; doubled until the sampled recall reaches `targetRecall`, then bisected twice.
        public var probes = 8
        public var targetRecall = 0.97
        /// Queries compared with the exact search.
        public var recallSample = 512
        public var seed: UInt64 = 0
        public init() {}
    }

    /// What the approximate search did: its cells and probes, and the recall measured on the sample.
    public struct ApproximateReport: Sendable {
        public var lists: Int
        public var probes: Int
        public var recall: Double
        public var sampled: Int
        /// (probes, recall) for every setting tried on the sample.
        public var tried: [(probes: Int, recall: Double)]
    }

    /// The k nearest targets of every query, approximately (``InvertedFile``), with the recall measured against the
    /// exact search on a seeded sample of queries. Small problems (fewer than 20,000 targets or as many lists as
    /// targets) fall back to the exact search (recall 1).
    public static func approximate(queries: Embeddings, targets: Embeddings, k: Int, excludeSelf: Bool = false,
                                   settings: ApproximateSettings = ApproximateSettings(),
                                   progress: (@Sendable (Double) -> Void)? = nil) throws -> (NearestNeighbors, ApproximateReport) {
        let available = targets.count - (excludeSelf ? 1 : 0)
        guard k >= 1, k <= available else {
            throw SelectionError.invalidInput("\(k) nearest neighbours were asked for, but there are only \(available) other rows")
        }
        let lists = settings.lists ?? max(1, Int((2 * Double(targets.count).squareRoot()).rounded()))
        if targets.count < 20_000 || lists >= targets.count {
            let exact = try NearestNeighbors.exact(queries: queries, targets: targets, k: k, excludeSelf: excludeSelf, progress: progress)
            return (exact, ApproximateReport(lists: 0, probes: 0, recall: 1, sampled: 0, tried: []))
        }
        let index = InvertedFile(targets: targets, lists: lists, seed: settings.seed)
        // The sample's exact neighbours (one more when a row may find itself).
        let s = min(queries.count, settings.recallSample)
        let sample = seededSample(queries.count, count: s, seed: settings.seed &+ 1).sorted()
        let sampleRows = queries.rows(sample)
        let extra = excludeSelf ? 1 : 0
        let exact = try NearestNeighbors.exact(queries: sampleRows, targets: targets, k: k + extra)
        var truth: [Set<Int32>] = []
        for (r, q) in sample.enumerated() {
            var ids = Array(exact.indices[(r * (k + extra))..<((r + 1) * (k + extra))])
            if excludeSelf { if let own = ids.firstIndex(of: Int32(q)) { ids.remove(at: own) } else { ids.removeLast() } }
            truth.append(Set(ids))
        }
        func recall(_ probes: Int) -> Double {
            let found = index.search(queries, rows: sample, k: k, excludeSelf: excludeSelf, probes: probes)
            var hit = 0
            for r in 0..<s { for t in 0..<k where truth[r].contains(found.indices[r * k + t]) { hit += 1 } }
            return Double(hit) / Double(s * k)
        }
        var probes = min(settings.probes, lists), tried: [(Int, Double)] = []
        var r = recall(probes)
        tried.append((probes, r))
        var below = 0
        while r < settings.targetRecall && probes < lists {
            below = probes
            probes = min(lists, probes * 2)
            r = recall(probes)
            tried.append((probes, r))
        }
        // Doubling overshoots (recall rises steeply near the target): two bisection steps between the last setting
        // below the target and the first above it keep the probes within an eighth of the smallest that suffices.
        if below > 0 {
            var (lo, hi, hiRecall) = (below, probes, r)
            for _ in 0..<2 where hi - lo > 1 {
                let mid = (lo + hi) / 2
                let m = recall(mid)
                tried.append((mid, m))
                if m >= settings.targetRecall { (hi, hiRecall) = (mid, m) } else { lo = mid }
            }
            (probes, r) = (hi, hiRecall)
        }
        var result = index.search(queries, rows: nil, k: k, excludeSelf: excludeSelf, probes: probes, progress: progress)
        // A query whose probed cells held fewer than k targets is searched exactly (rare: cells hold about N / lists).
        let short = (0..<queries.count).filter { result.indices[$0 * k + k - 1] < 0 }
        if !short.isEmpty {
            let fill = try NearestNeighbors.exact(queries: queries.rows(short), targets: targets, k: k + extra)
            var indices = result.indices, distances = result.distances
            for (r, q) in short.enumerated() {
                var found = Array(zip(fill.indices[(r * (k + extra))..<((r + 1) * (k + extra))], fill.distances[(r * (k + extra))..<((r + 1) * (k + extra))]))
                if excludeSelf { if let own = found.firstIndex(where: { $0.0 == Int32(q) }) { found.remove(at: own) } else { found.removeLast() } }
                for t in 0..<k { indices[q * k + t] = found[t].0; distances[q * k + t] = found[t].1 }
            }
            result = NearestNeighbors(indices: indices, distances: distances, k: k)
        }
        return (result, ApproximateReport(lists: lists, probes: probes, recall: r, sampled: s, tried: tried.map { (probes: $0.0, recall: $0.1) }))
    }
}
