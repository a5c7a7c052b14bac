import Foundation
import Testing
import TestSupport
@testable import MedImage
@testable import MedMetrics

func mask(_ dims: [Int], spacing: [Double] = [1, 1, 1], _ on: (Int, Int, Int) -> Bool) -> MedicalImage {
    var img = MedicalImage(shape: ImageShape(dims[0], dims[1], dims[2]), affine: .diagonal(spacing: spacing), kind: .labelMap)
    for k in 0..<dims[2] { for j in 0..<dims[1] { for i in 0..<dims[0] where on(i, j, k) { img[i, j, k] = 1 } } }
    return img
}

/// Independent reference: border voxels by explicit 6-neighbour test, distances by brute force.
func bruteSurface(_ p: MedicalImage, _ r: MedicalImage) -> ([Double], [Double]) {
    func border(_ m: MedicalImage) -> [(Int, Int, Int)] {
        var out: [(Int, Int, Int)] = []
        let s = m.shape
        func on(_ i: Int, _ j: Int, _ k: Int) -> Bool {
            i >= 0 && j >= 0 && k >= 0 && i < s.x && j < s.y && k < s.z && m[i, j, k] != 0
        }
        for k in 0..<s.z { for j in 0..<s.y { for i in 0..<s.x where on(i, j, k) {
            var nb = [(i - 1, j, k), (i + 1, j, k), (i, j - 1, k), (i, j + 1, k)]
            if s.z > 1 { nb += [(i, j, k - 1), (i, j, k + 1)] }
            if !nb.allSatisfy({ on($0.0, $0.1, $0.2) }) { out.append((i, j, k)) }
        } } }
        return out
    }
    let sp = r.spacing
    func directed(_ a: [(Int, Int, Int)], _ b: [(Int, Int, Int)]) -> [Double] {
        a.map { p in b.map { q in
            let dx = Double(p.0 - q.0) * sp[0], dy = Double(p.1 - q.1) * sp[1], dz = Double(p.2 - q.2) * sp[2]
            return (dx * dx + dy * dy + dz * dz).squareRoot()
        }.min()! }.sorted()
    }
    let bp = border(p), br = border(r)
    return (directed(bp, br), directed(br, bp))
}

@Suite("Segmentation metrics")
struct MetricsTests {
    @Test("a single voxel displaced by one voxel: Dice 0, every distance one spacing")
    func displaced() throws {
        let r = mask([5, 5, 5], spacing: [0.8, 1, 2]) { $0 == 2 && $1 == 2 && $2 == 2 }
        let p = mask([5, 5, 5], spacing: [0.8, 1, 2]) { $0 == 3 && $1 == 2 && $2 == 2 }
        let m = try #require(try SegmentationMetrics.compute(prediction: p, reference: r)[1])
        #expect(m.dice == 0 && m.iou == 0)
        #expect(abs(m.hausdorff - 0.8) < 1e-12 && abs(m.hausdorff95 - 0.8) < 1e-12 && abs(m.assd - 0.8) < 1e-12)
    }

    @Test("two spheres shifted by k voxels along z: Hausdorff is exactly k times the z spacing")
    func spheres() throws {
        let dims = [30, 30, 24], sp = [0.6, 0.6, 2.5]
        func sphere(_ cz: Double) -> MedicalImage {
            mask(dims, spacing: sp) { i, j, k in
                let dx = (Double(i) - 14.5) * sp[0], dy = (Double(j) - 14.5) * sp[1], dz = (Double(k) - cz) * sp[2]
                return dx * dx + dy * dy + dz * dz < 36
            }
        }
        let a = sphere(8), b = sphere(11)   // shifted by 3 slices = 7.5 mm
        let m = try #require(try SegmentationMetrics.compute(prediction: a, reference: b)[1])
        #expect(abs(m.hausdorff - 7.5) < 1e-9)
        #expect(m.hausdorff95 <= m.hausdorff && m.assd < m.hausdorff && m.dice > 0 && m.dice < 1)
    }

    @Test("agrees with a brute-force implementation on random blobs, both HD95 poolings")
    func bruteForce() throws {
        var rng = SplitMix(state: 3)
        for trial in 0..<4 {
            let dims = trial % 2 == 0 ? [12, 10, 6] : [16, 14, 1]
            let sp = [0.7, 0.9, 3.0]
            let (cx, cy) = (Double.random(in: 4...8, using: &rng), Double.random(in: 4...6, using: &rng))
            let deep = dims[2] > 1
            let p = mask(dims, spacing: sp) { i, j, k in
                let x = Double(i) - cx, y = Double(j) - cy, z: Double = deep ? Double(k) - 2.5 : 0
                return x * x / 9 + y * y / 6 + z * z / 4 < 1
            }
            let r = mask(dims, spacing: sp) { i, j, k in
                let x = Double(i) - 6, y = Double(j) - 5, z: Double = deep ? Double(k) - 3 : 0
                return x * x / 12 + y * y / 5 + z * z / 3 < 1
            }
            let (dPR, dRP) = bruteSurface(p, r)
            let ours = try #require(try SegmentationMetrics.compute(prediction: p, reference: r)[1])
            let pooled = try #require(try SegmentationMetrics.compute(prediction: p, reference: r, hd95: .pooled)[1])
            #expect(abs(ours.hausdorff - max(dPR.last!, dRP.last!)) < 1e-9)
            func p95(_ v: [Double]) -> Double { SegmentationMetrics.percentile(sorted: v, 95) }
            let directedMax = max(p95(dPR), p95(dRP))
            let both: [Double] = (dPR + dRP).sorted()
            #expect(abs(ours.hausdorff95 - directedMax) < 1e-9)
            #expect(abs(pooled.hausdorff95 - p95(both)) < 1e-9)
            #expect(abs(ours.assd - (dPR + dRP).reduce(0, +) / Double(dPR.count + dRP.count)) < 1e-9)
        }
    }

    @Test("overlap counts by hand")
    func overlap() throws {
        let p = MedicalImage(shape: ImageShape(6, 1), voxels: [1, 1, 1, 0, 2, 0], kind: .labelMap)
        let r = MedicalImage(shape: ImageShape(6, 1), voxels: [0, 1, 1, 1, 2, 2], kind: .labelMap)
        let m = try SegmentationMetrics.compute(prediction: p, reference: r)
        #expect(m[1]!.dice == 2.0 * 2 / 6 && m[1]!.iou == 0.5 && m[1]!.precision == 2.0 / 3 && m[1]!.sensitivity == 2.0 / 3)
        #expect(m[2]!.dice == 2.0 / 3)
    }

    @Test("empty masks follow the chosen policy")
    func empty() throws {
        let none = MedicalImage(shape: ImageShape(4, 4), kind: .labelMap)
        var one = none; one[1, 1] = 1
        let both = try SegmentationMetrics.compute(prediction: none, reference: none, labels: [1])[1]!
        #expect(both.dice.isNaN && both.hausdorff.isNaN)
        let bothOne = try SegmentationMetrics.compute(prediction: none, reference: none, labels: [1],
                                                      empty: EmptyMaskPolicy(bothEmptyOverlap: 1))[1]!
        #expect(bothOne.dice == 1)
        let miss = try SegmentationMetrics.compute(prediction: none, reference: one)[1]!
        #expect(miss.dice == 0 && miss.hausdorff == .infinity && miss.sensitivity == 0)
        let missNaN = try SegmentationMetrics.compute(prediction: none, reference: one,
                                                      empty: EmptyMaskPolicy(oneEmptyDistance: .nan))[1]!
        #expect(missNaN.hausdorff95.isNaN)
        #expect(throws: MetricsError.self) {
            try SegmentationMetrics.compute(prediction: MedicalImage(shape: ImageShape(3, 4)), reference: none)
        }
    }

    @Test("summaries count NaN and infinity instead of hiding them")
    func summary() {
        let s = MetricSummary([1, 3, .nan, .infinity, 2])
        #expect(s.mean == 2 && s.median == 2 && s.count == 3 && s.nanCount == 1 && s.infiniteCount == 1)
        #expect(abs(s.std - (2.0 / 3).squareRoot()) < 1e-12)
        #expect(MetricSummary([.nan]).mean.isNaN)
    }
}
