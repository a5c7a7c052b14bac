import Foundation

/// Barnes-Hut t-SNE to 2-D (van der Maaten, "Accelerating t-SNE using Tree-Based Algorithms", JMLR 2014), with
/// scikit-learn's defaults and schedule: affinities from the min(N−1, 3·perplexity+1) nearest neighbours (squared
/// distances, per-point precision by binary search on the entropy), symmetrised P; PCA initialisation scaled to
/// std 1e-4; 250 iterations with early exaggeration 12 and momentum 0.5, then momentum 0.8; adaptive gains
/// (+0.2 / ×0.8, minimum 0.01); learning rate max(N / 12 / 4, 50); repulsion summarised by a quadtree with θ = 0.5.
public enum TSNE {
    public struct Options: Sendable {
        public var perplexity: Double = 30
        public var iterations: Int = 1000
        public var earlyExaggeration: Double = 12
        public var exaggerationIterations: Int = 250
        public var learningRate: Double? = nil
        public var theta: Double = 0.5
        public var seed: UInt64 = 0
        public init() {}
    }

    /// N x 2 coordinates, row-major.
    public static func embed(_ x: Embeddings, options: Options = Options()) throws -> [Float] {
        let n = x.count
        guard n >= 4 else { throw SelectionError.invalidInput("t-SNE needs at least 4 rows") }
        guard options.perplexity > 0, options.perplexity < Double(n) else {
            throw SelectionError.invalidInput("perplexity must be in (0, N); got \(options.perplexity)")
        }
        let (rowStart, cols, vals) = try affinities(x, perplexity: options.perplexity)
        // Initialisation: PCA, scaled so the first coordinate has std 1e-4.
        let pca = try PCA.fit(x, components: min(2, x.dimensions), seed: options.seed)
        var y = [Double](repeating: 0, count: n * 2)
        let proj = PCA.transform(x, pca)
        let m = pca.count
        for i in 0..<n { for a in 0..<m { y[i * 2 + a] = Double(proj[i * m + a]) } }
        let mean0 = (0..<n).map { y[$0 * 2] }.reduce(0, +) / Double(n)
        let std0 = max(1e-12, ((0..<n).map { (y[$0 * 2] - mean0) * (y[$0 * 2] - mean0) }.reduce(0, +) / Double(n)).squareRoot())
        for i in 0..<(n * 2) { y[i] = y[i] / std0 * 1e-4 }
        let lr = options.learningRate ?? max(Double(n) / options.earlyExaggeration / 4, 50)
        var update = [Double](repeating: 0, count: n * 2)
        var gains = [Double](repeating: 1, count: n * 2)
        var grad = [Double](repeating: 0, count: n * 2)
        for it in 0..<options.iterations {
            let exaggeration = it < options.exaggerationIterations ? options.earlyExaggeration : 1
            let momentum = it < options.exaggerationIterations ? 0.5 : 0.8
            gradient(y, n: n, rowStart: rowStart, cols: cols, vals: vals, exaggeration: exaggeration, theta: options.theta, into: &grad)
            for i in 0..<(n * 2) {
                if (update[i] * grad[i] < 0) { gains[i] += 0.2 } else { gains[i] = max(gains[i] * 0.8, 0.01) }
                update[i] = momentum * update[i] - lr * gains[i] * grad[i]
                y[i] += update[i]
            }
        }
        return y.map(Float.init)
    }

    /// Sparse symmetric P (CSR) with total sum 1.
    static func affinities(_ x: Embeddings, perplexity: Double) throws -> ([Int], [Int32], [Double]) {
        let n = x.count
        let k = min(n - 1, Int(3 * perplexity + 1))
        let nn = try NearestNeighbors.exact(queries: x, targets: x, k: k, excludeSelf: true)
        var cond = [Double](repeating: 0, count: n * k)
        let target = log(perplexity)
        for i in 0..<n {
            let d2 = (0..<k).map { Double(nn.distances[i * k + $0]) * Double(nn.distances[i * k + $0]) }
            var beta = 1.0, lo = -Double.infinity, hi = Double.infinity
            var p = [Double](repeating: 0, count: k)
            for _ in 0..<100 {
                var sum = 0.0
                for t in 0..<k { p[t] = exp(-d2[t] * beta); sum += p[t] }
                if sum == 0 { sum = 1e-8 }
                var sdp = 0.0
                for t in 0..<k { p[t] /= sum; sdp += d2[t] * p[t] }
                let entropy = log(sum) + beta * sdp
                let diff = entropy - target
                if abs(diff) <= 1e-5 { break }
                if diff > 0 { lo = beta; beta = hi.isInfinite ? beta * 2 : (beta + hi) / 2 }
                else { hi = beta; beta = lo.isInfinite ? beta / 2 : (beta + lo) / 2 }
            }
            for t in 0..<k { cond[i * k + t] = p[t] }
        }
        // Symmetrise: P = (P_cond + P_cond^T) / sum.
        var entries = [[Int32: Double]](repeating: [:], count: n)
        for i in 0..<n {
            for t in 0..<k {
                let j = Int(nn.indices[i * k + t]), v = cond[i * k + t]
                entries[i][Int32(j), default: 0] += v
                entries[j][Int32(i), default: 0] += v
            }
        }
        // Sorted rows, and a sum in that fixed order: Dictionary iteration order differs between instances, and
        // t-SNE amplifies last-bit differences, so order matters for reproducibility.
        var rowStart = [0], cols: [Int32] = [], vals: [Double] = []
        for i in 0..<n {
            for (j, v) in entries[i].sorted(by: { $0.key < $1.key }) { cols.append(j); vals.append(v) }
            rowStart.append(cols.count)
        }
        let total = vals.reduce(0, +)
        for t in vals.indices { vals[t] /= total }
        return (rowStart, cols, vals)
    }

    /// The Barnes-Hut quadtree over the current map.
    struct QuadTree {
        var cx: [Double] = [], cy: [Double] = [], count: [Int] = [], width: [Double] = []
        var firstChild: [Int] = []      // index of 4 consecutive children, or -1 for a leaf
        var point: [Int] = []           // for leaves: one point index (or -1)

        init(_ y: [Double], n: Int) {
            var minX = Double.infinity, minY = Double.infinity, maxX = -Double.infinity, maxY = -Double.infinity
            for i in 0..<n { minX = min(minX, y[2 * i]); maxX = max(maxX, y[2 * i]); minY = min(minY, y[2 * i + 1]); maxY = max(maxY, y[2 * i + 1]) }
            let w = max(maxX - minX, maxY - minY) * 1.0001 + 1e-12
            var idx = Array(0..<n)
            _ = build(y, &idx, 0, n, minX, minY, w, depth: 0)
        }

        mutating func build(_ y: [Double], _ idx: inout [Int], _ lo: Int, _ hi: Int, _ x0: Double, _ y0: Double, _ w: Double, depth: Int) -> Int {
            let node = count.count
            var sx = 0.0, sy = 0.0
            for t in lo..<hi { sx += y[2 * idx[t]]; sy += y[2 * idx[t] + 1] }
            let c = hi - lo
            cx.append(c > 0 ? sx / Double(c) : 0); cy.append(c > 0 ? sy / Double(c) : 0)
            count.append(c); width.append(w); firstChild.append(-1); point.append(c > 0 ? idx[lo] : -1)
            if c <= 1 || depth >= 48 { return node }
            let mx = x0 + w / 2, my = y0 + w / 2
            // Partition idx[lo..<hi] into 4 quadrants: (left,bottom), (right,bottom), (left,top), (right,top).
            var parts: [[Int]] = [[], [], [], []]
            for t in lo..<hi {
                let i = idx[t]
                let q = (y[2 * i] >= mx ? 1 : 0) + (y[2 * i + 1] >= my ? 2 : 0)
                parts[q].append(i)
            }
            var pos = lo
            var bounds: [(Int, Int)] = []
            for q in 0..<4 { for i in parts[q] { idx[pos] = i; pos += 1 }; bounds.append((pos - parts[q].count, pos)) }
            let first = count.count
            firstChild[node] = first
            // Reserve 4 consecutive slots, then fill them.
            for _ in 0..<4 { cx.append(0); cy.append(0); count.append(0); width.append(0); firstChild.append(-1); point.append(-1) }
            for q in 0..<4 {
                let (a, b) = bounds[q]
                let child = first + q
                let sub = QuadTree.child(&self, y, &idx, a, b, x0 + (q & 1 == 1 ? w / 2 : 0), y0 + (q & 2 == 2 ? w / 2 : 0), w / 2, depth + 1)
                // Copy the subtree root into the reserved slot.
                cx[child] = cx[sub]; cy[child] = cy[sub]; count[child] = count[sub]; width[child] = width[sub]
                firstChild[child] = firstChild[sub]; point[child] = point[sub]
            }
            return node
        }

        static func child(_ tree: inout QuadTree, _ y: [Double], _ idx: inout [Int], _ lo: Int, _ hi: Int, _ x0: Double, _ y0: Double,
                          _ w: Double, _ depth: Int) -> Int {
            tree.build(y, &idx, lo, hi, x0, y0, w, depth: depth)
        }
    }

    static func gradient(_ y: [Double], n: Int, rowStart: [Int], cols: [Int32], vals: [Double], exaggeration: Double,
                         theta: Double, into grad: inout [Double]) {
        let tree = QuadTree(y, n: n)
        var negX = [Double](repeating: 0, count: n), negY = [Double](repeating: 0, count: n), sQ = [Double](repeating: 0, count: n)
        negX.withUnsafeMutableBufferPointer { nx in
            negY.withUnsafeMutableBufferPointer { ny in
                sQ.withUnsafeMutableBufferPointer { sq in
                    let px = nx.baseAddress!, py = ny.baseAddress!, ps = sq.baseAddress!
                    concurrentRows(n) { i in
                        let yi = y[2 * i], yj = y[2 * i + 1]
                        var fx = 0.0, fy = 0.0, z = 0.0
                        var stack = [0]
                        while let node = stack.popLast() {
                            let c = tree.count[node]
                            if c == 0 { continue }
                            let dx = yi - tree.cx[node], dy = yj - tree.cy[node]
                            let d2 = dx * dx + dy * dy
                            let leaf = tree.firstChild[node] < 0
                            if leaf && c == 1 && tree.point[node] == i { continue }
                            if leaf || (d2 > 0 && tree.width[node] * tree.width[node] < theta * theta * d2) {
                                var cnt = Double(c)
                                if leaf && c > 1 && d2 == 0 { cnt -= 1 }   // coincident points include i itself
                                let q = 1 / (1 + d2)
                                z += cnt * q
                                let m = cnt * q * q
                                fx += m * dx; fy += m * dy
                            } else {
                                let f = tree.firstChild[node]
                                stack.append(f); stack.append(f + 1); stack.append(f + 2); stack.append(f + 3)
                            }
                        }
                        px[i] = fx; py[i] = fy; ps[i] = z
                    }
                }
            }
        }
        let z = max(sQ.reduce(0, +), 1e-12)
        for i in 0..<n {
            var ax = 0.0, ay = 0.0
            for t in rowStart[i]..<rowStart[i + 1] {
                let j = Int(cols[t])
                let dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1]
                let q = 1 / (1 + dx * dx + dy * dy)
                let m = exaggeration * vals[t] * q
                ax += m * dx; ay += m * dy
            }
            grad[2 * i] = 4 * (ax - negX[i] / z)
            grad[2 * i + 1] = 4 * (ay - negY[i] / z)
        }
    }

    /// Trustworthiness (Venna & Kaski 2001, scikit-learn's formula): 1 − 2 / (n k (2n − 3k − 1)) Σ_i Σ_{j ∈ U_i}
    /// (r(i, j) − k), where U_i are the k nearest neighbours of i in the map that are not among its k nearest in the
    /// original space and r(i, j) is j's rank among i's original neighbours. 1 means neighbourhoods are kept.
    public static func trustworthiness(original x: Embeddings, embedded y: [Float], k: Int = 5) throws -> Double {
        let n = x.count
        guard y.count == n * 2, k >= 1, k < n / 2 else { throw SelectionError.invalidInput("trustworthiness needs an N x 2 map and k < N/2") }
        let map = try Embeddings(values: y, count: n, dimensions: 2)
        let full = try NearestNeighbors.exact(queries: x, targets: x, k: n - 1, excludeSelf: true)
        let near = try NearestNeighbors.exact(queries: map, targets: map, k: k, excludeSelf: true)
        var penalty = 0.0
        var rank = [Int](repeating: 0, count: n)
        for i in 0..<n {
            for r in 0..<(n - 1) { rank[Int(full.indices[i * (n - 1) + r])] = r + 1 }
            for t in 0..<k {
                let j = Int(near.indices[i * k + t])
                if rank[j] > k { penalty += Double(rank[j] - k) }
            }
        }
        return 1 - 2 / (Double(n) * Double(k) * (2 * Double(n) - 3 * Double(k) - 1)) * penalty
    }
}
