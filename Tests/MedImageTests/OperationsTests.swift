import Foundation
import Testing
import TestSupport
@testable import MedImage

func ramp(_ s: ImageShape, affine: Affine = .identity) -> MedicalImage {
    MedicalImage(shape: s, voxels: (0..<s.count).map { Float($0) }, affine: affine)
}

func world(_ img: MedicalImage, _ i: Int, _ j: Int, _ k: Int) -> [Double] {
    let p = img.affine.apply((Double(i), Double(j), Double(k)))
    return [p.0, p.1, p.2]
}

@Suite("Reorientation")
struct ReorientTests {
    static let lps = Affine(rows: [[-0.7, 0, 0, 40], [0, -0.8, 0, 50], [0, 0, 3, -20], [0, 0, 0, 1]])
    static let als = Affine(rows: [[0, -0.8, 0, 10], [0.9, 0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]])

    @Test("every voxel keeps its world position and value", arguments: [lps, als])
    func keepsWorld(affine: Affine) throws {
        let img = ramp(ImageShape(4, 3, 2), affine: affine)
        let ras = try img.reoriented()
        #expect(ras.orientationCodes == "RAS")
        var seen = 0
        for k in 0..<ras.shape.z { for j in 0..<ras.shape.y { for i in 0..<ras.shape.x {
            let w = world(ras, i, j, k)
            let inv = img.affine.inverse!.apply((w[0], w[1], w[2]))
            let (a, b, c) = (Int(inv.0.rounded()), Int(inv.1.rounded()), Int(inv.2.rounded()))
            #expect(abs(inv.0 - Double(a)) < 1e-9 && abs(inv.1 - Double(b)) < 1e-9 && abs(inv.2 - Double(c)) < 1e-9)
            #expect(ras[i, j, k] == img[a, b, c])
            seen += 1
        } } }
        #expect(seen == img.shape.count)
    }

    @Test("reorienting there and back is the identity")
    func roundTrip() throws {
        let img = ramp(ImageShape(5, 4, 3, 2), affine: Self.als)
        let back = try img.reoriented(to: "RAS").reoriented(to: "ALS")
        #expect(back.voxels == img.voxels && back.affine.maxAbsDifference(img.affine) < 1e-12 && back.shape == img.shape)
        #expect(try img.reoriented(to: "PIR").orientationCodes == "PIR")
        #expect(throws: ImageError.self) { try img.reoriented(to: "RAR") }
    }
}

@Suite("Resampling")
struct ResampleTests {
    @Test("nearest resampling of a label map never creates a new label")
    func labelsStay() throws {
        var rng = SplitMix(state: 1)
        let s = ImageShape(13, 11, 7)
        let labels: [Float] = [0, 1, 2, 5]
        let img = MedicalImage(shape: s, voxels: (0..<s.count).map { _ in labels.randomElement(using: &rng)! }, kind: .labelMap)
        for target in [[5, 4, 3], [26, 30, 9], [13, 7, 20]] {
            let r = try img.resampled(toShape: target, interpolation: .cubic)   // cubic is ignored for labels
            #expect(Set(r.voxels).isSubset(of: Set(labels)))
        }
    }

    @Test("linear upsampling reproduces a linear ramp between the outer voxel centres")
    func linearRamp() throws {
        let img = MedicalImage(shape: ImageShape(4, 1), voxels: [0, 10, 20, 30])
        let up = try img.resampled(toShape: [8, 1, 1], antialias: false)
        // new centres at old index (o + 0.5)/2 - 0.5 = -0.25, 0.25, ..., 3.25; clamped at the ends.
        let expected: [Float] = [0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30]
        #expect(zip(up.voxels, expected).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test("antialiased downsampling of a one-pixel checkerboard gives its mean; without, it aliases")
    func antialias() throws {
        let n = 64
        let img = MedicalImage(shape: ImageShape(n, n), voxels: (0..<(n * n)).map { Float(($0 % n + $0 / n) % 2) })
        let smooth = try img.resampled(toShape: [8, 8, 1])
        #expect(smooth.voxels.allSatisfy { abs($0 - 0.5) < 0.02 })
        let aliased = try img.resampled(toShape: [8, 8, 1], interpolation: .nearest)
        #expect(aliased.voxels.allSatisfy { $0 == 0 || $0 == 1 })
    }

    @Test("the physical extent is kept and spacing follows the target")
    func extent() throws {
        let img = ramp(ImageShape(10, 20, 5), affine: .diagonal(spacing: [0.5, 0.4, 3], origin: [10, 20, 30]))
        let r = try img.resampled(toSpacing: [1, 1, 1])
        #expect(r.shape == ImageShape(5, 8, 15))
        // Field-of-view corner (index -0.5) is the same world point.
        let a = img.affine.apply((-0.5, -0.5, -0.5)), b = r.affine.apply((-0.5, -0.5, -0.5))
        #expect(abs(a.0 - b.0) < 1e-9 && abs(a.1 - b.1) < 1e-9 && abs(a.2 - b.2) < 1e-9)
        #expect(abs(r.spacing[1] - 1.0) < 1e-9 && abs(r.spacing[0] - 1.0) < 1e-9)
    }

    @Test("resampling onto another grid through the affines")
    func ontoGrid() throws {
        let img = ramp(ImageShape(6, 5, 4), affine: ReorientTests.als)
        let ras = try img.reoriented()
        // The reoriented image brought back onto the original grid gives the original voxels exactly.
        #expect(try ras.resampled(onto: img, interpolation: .nearest).voxels == img.voxels)
        #expect(try ras.resampled(onto: img, interpolation: .linear).voxels.enumerated().allSatisfy { abs($0.element - img.voxels[$0.offset]) < 1e-4 })
        // Points outside get the fill value.
        var shifted = img.affine
        shifted[0, 3] += 1000
        #expect(try img.resampled(ontoShape: img.shape, affine: shifted, fill: -1).voxels.allSatisfy { $0 == -1 })
    }
}

@Suite("Crop, pad and slices")
struct CropSliceTests {
    @Test("extract crops and pads while keeping world positions")
    func extract() throws {
        let img = ramp(ImageShape(6, 5, 4), affine: ReorientTests.lps)
        let c = try img.extract(VoxelRegion(lower: [-1, 1, 2], upper: [3, 4, 5]), fill: -7)
        #expect(c.shape == ImageShape(4, 3, 3))
        #expect(c[0, 0, 0] == -7 && c[1, 0, 0] == img[0, 1, 2] && c[3, 2, 1] == img[2, 3, 3] && c[1, 0, 2] == -7)
        #expect(world(c, 1, 0, 0) == world(img, 0, 1, 2))
        let sized = try img.cropOrPad(to: [4, 8, 4])
        #expect(sized.shape == ImageShape(4, 8, 4) && sized[0, 1, 0] == img[1, 0, 0])
    }

    @Test("foreground crop with margin")
    func foreground() throws {
        var img = MedicalImage(shape: ImageShape(10, 10, 10))
        img[3, 4, 5] = 1; img[6, 4, 7] = 2
        #expect(img.foregroundBox() == VoxelRegion(lower: [3, 4, 5], upper: [7, 5, 8]))
        let c = try img.croppedToForeground(margin: [1, 1, 5])
        #expect(c.shape == ImageShape(6, 3, 10))
    }

    @Test("slices carry their own geometry and stack back to the volume", arguments: [0, 1, 2])
    func slices(axis: Int) throws {
        let img = ramp(ImageShape(5, 4, 3, 2), affine: ReorientTests.als)
        let s = try img.slice(axis: axis, index: 1)
        #expect(s.is2D)
        // The slice's pixel (0, 0) sits where voxel index 1 along `axis` sits.
        var idx = [0, 0, 0]; idx[axis] = 1
        #expect(world(s, 0, 0, 0) == world(img, idx[0], idx[1], idx[2]))
        let back = try MedicalImage.stack(try img.slices(axis: axis), axis: axis)
        #expect(back.voxels == img.voxels && back.affine.maxAbsDifference(img.affine) < 1e-12)
    }
}

@Suite("Intensity")
struct IntensityTests {
    @Test("percentiles interpolate like NumPy")
    func percentiles() {
        let img = MedicalImage(shape: ImageShape(5, 1), voxels: [4, 1, .nan, 3, 2])
        #expect(img.percentiles([0, 50, 25, 100, 90]) == [1, 2.5, 1.75, 4, 3.7])
    }

    @Test("z-score gives mean 0 and std 1, optionally inside a mask")
    func zscore() throws {
        let img = MedicalImage(shape: ImageShape(4, 1), voxels: [1, 2, 3, 10])
        let z = try img.zScored()
        let mean = z.voxels.reduce(0, +) / 4
        let std = (z.voxels.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4).squareRoot()
        #expect(abs(mean) < 1e-6 && abs(std - 1) < 1e-5)
        let mask = MedicalImage(shape: ImageShape(4, 1), voxels: [1, 1, 1, 0])
        let zm = try img.zScored(mask: mask)
        // mean 2, std sqrt(2/3)
        #expect(abs(zm.voxels[0] + Float(1 / (2.0 / 3).squareRoot())) < 1e-5 && zm.voxels[1] == 0)
        #expect(throws: ImageError.self) { try img.zScored(mask: MedicalImage(shape: ImageShape(4, 1))) }
    }

    @Test("min-max per channel, percentile clipping, histogram")
    func others() {
        var rgb = MedicalImage(shape: ImageShape(2, 1, 1, 2), voxels: [0, 10, 5, 7])
        rgb.info.components = .color
        #expect(rgb.minMaxScaled().voxels == [0, 1, 0, 1])
        let img = MedicalImage(shape: ImageShape(5, 1), voxels: [0, 1, 2, 3, 100])
        #expect(img.clipped(toPercentiles: 0, 75).voxels == [0, 1, 2, 3, 3])
        let h = img.histogram(bins: 4, range: 0...4)
        #expect(h.counts == [1, 1, 1, 1] && h.edges == [0, 1, 2, 3, 4])
    }
}

@Suite("Label maps")
struct LabelTests {
    @Test("remap RIGA-style 0/128/255 to 0/1/2 and binarise")
    func remap() {
        let img = MedicalImage(shape: ImageShape(4, 1), voxels: [0, 128, 255, 128], kind: .labelMap)
        #expect(img.remapped([128: 1, 255: 2]).voxels == [0, 1, 2, 1])
        #expect(img.binarized().voxels == [0, 1, 1, 1])
        #expect(img.binarized(labels: [255]).voxels == [0, 0, 1, 0])
    }

    @Test("face versus full connectivity in 2-D and 3-D")
    func components() {
        // Diagonal neighbours: two components with 4-connectivity, one with 8.
        let d2 = MedicalImage(shape: ImageShape(3, 3), voxels: [1, 0, 0, 0, 1, 0, 0, 0, 1])
        #expect(d2.connectedComponents(connectivity: .face).sizes == [1, 1, 1])
        #expect(d2.connectedComponents(connectivity: .full).sizes == [3])
        var d3 = MedicalImage(shape: ImageShape(3, 3, 3))
        d3[0, 0, 0] = 1; d3[1, 1, 1] = 1; d3[2, 2, 1] = 1; d3[2, 2, 2] = 1
        #expect(d3.connectedComponents(connectivity: .face).sizes == [2, 1, 1])
        #expect(d3.connectedComponents(connectivity: .full).sizes == [4])
    }

    @Test("keep the largest component, fill holes, volumes in mm^3")
    func cleanup() {
        var img = MedicalImage(shape: ImageShape(7, 7), affine: .diagonal(spacing: [0.5, 0.5, 2]), kind: .labelMap)
        for j in 1...5 { for i in 1...5 where i == 1 || i == 5 || j == 1 || j == 5 { img[i, j] = 1 } }  // a ring
        img[0, 6] = 1                                                                                     // a speck
        let kept = img.keepingLargestComponents()
        #expect(kept[0, 6] == 0 && kept[1, 1] == 1)
        let filled = kept.holesFilled()
        #expect(filled[3, 3] == 1 && filled[0, 0] == 0)
        #expect(filled.labelVolumes()[1] == 25 * 0.5 * 0.5 * 2)
    }
}

@Suite("Distance transform")
struct DistanceTests {
    @Test("one feature voxel: distances are hand-computable with anisotropic spacing")
    func single() {
        var mask = [Bool](repeating: false, count: 5 * 4 * 3)
        mask[2 + 5 * (1 + 4 * 1)] = true
        let d = DistanceTransform.squaredDistance(toFeatures: mask, dims: [5, 4, 3], spacing: [0.5, 2, 3])
        // voxel (0, 3, 0): dx = 2 * 0.5, dy = 2 * 2, dz = 1 * 3 -> 1 + 16 + 9 = 26
        #expect(d[0 + 5 * (3 + 4 * 0)] == 26)
        #expect(d[2 + 5 * (1 + 4 * 1)] == 0)
    }

    @Test("agrees with brute force on random masks")
    func bruteForce() {
        var rng = SplitMix(state: 9)
        let dims = [9, 7, 5], spacing = [0.7, 1.3, 2.9]
        for _ in 0..<5 {
            let mask = (0..<(9 * 7 * 5)).map { _ in Double.random(in: 0..<1, using: &rng) < 0.05 }
            let d = DistanceTransform.squaredDistance(toFeatures: mask, dims: dims, spacing: spacing)
            let features = mask.indices.filter { mask[$0] }
            for idx in mask.indices {
                let (i, j, k) = (idx % 9, (idx / 9) % 7, idx / 63)
                let best = features.map { f -> Double in
                    let (a, b, c) = (f % 9, (f / 9) % 7, f / 63)
                    let dx = Double(i - a) * spacing[0], dy = Double(j - b) * spacing[1], dz = Double(k - c) * spacing[2]
                    return dx * dx + dy * dy + dz * dz
                }.min() ?? .infinity
                #expect(abs(d[idx] - best) < 1e-9 || (d[idx].isInfinite && best.isInfinite))
            }
        }
    }
}
