import Foundation

/// Neighbourhood for connected components: `face` (4 in 2-D, 6 in 3-D) or `full` (8 in 2-D, 26 in 3-D).
public enum Connectivity: String, Sendable, Codable {
    case face, full
}

extension MedicalImage {
    /// Voxel volume in mm^3 (|det| of the affine's 3x3 part; for 2-D images the pixel area in mm^2 times the
    /// third column's length, which is 1 for PNG).
    public var voxelVolume: Double { abs(affine.determinant3) }

    /// Why these voxels are not a label map, or nil when every value is a finite integer in 0...2^31 - 1: the first
    /// offending voxel, its (i, j, k) index and value ("voxel (12, 3, 0) is NaN", "value 0.5 at voxel (4, 7, 1) is not
    /// an integer label"). Label maps are integer images; a probability map or an image with NaN is refused rather
    /// than rounded into labels nobody drew.
    public var labelMapProblem: String? {
        let n = voxels.count
        var bad = -1
        voxels.withUnsafeBufferPointer { v in
            for i in 0..<n {
                let x = v[i]
                if !(x >= 0 && x <= 2_147_483_647 && x == x.rounded(.towardZero)) { bad = i; break }
            }
        }
        guard bad >= 0 else { return nil }
        let vol = max(1, shape.spatialCount), p = bad % vol
        let at = "(\(p % shape.x), \((p / shape.x) % shape.y), \(p / (shape.x * shape.y)))" + (bad >= vol ? " of channel \(bad / vol)" : "")
        let x = voxels[bad]
        if x.isNaN { return "voxel \(at) is NaN" }
        if x.isInfinite { return "voxel \(at) is \(x > 0 ? "+" : "-")infinite" }
        if x < 0 { return "value \(x) at voxel \(at) is negative; labels are 0 (background) and positive integers" }
        if x > 2_147_483_647 { return "value \(x) at voxel \(at) is too large for a label" }
        return "value \(x) at voxel \(at) is not an integer label (a probability or intensity map? threshold or argmax it first)"
    }

    /// Values replaced through `mapping` (e.g. [255: 1] or RIGA's [128: 1, 255: 2]); values not in the mapping stay,
    /// or become `otherwise` when given.
    public func remapped(_ mapping: [Float: Float], otherwise: Float? = nil) -> MedicalImage {
        var r = self
        r.voxels.withUnsafeMutableBufferPointer { v in
            for i in v.indices { if let m = mapping[v[i]] { v[i] = m } else if let o = otherwise { v[i] = o } }
        }
        return r
    }

    /// A binary label map: 1 where the value is one of `labels` (or, without labels, above `threshold`), else 0.
    public func binarized(labels: Set<Float>? = nil, threshold: Float = 0) -> MedicalImage {
        var r = self
        r.voxels.withUnsafeMutableBufferPointer { v in
            for i in v.indices { v[i] = (labels.map { $0.contains(v[i]) } ?? (v[i] > threshold)) ? 1 : 0 }
        }
        r.kind = .labelMap
        r.info.storedType = .uint8
        return r
    }

    /// Labels the connected components of the non-zero voxels (first channel): component ids 1...n in decreasing size
    /// (ties by first voxel), 0 for background. Returns the id map and the voxel count of each component.
    public func connectedComponents(connectivity: Connectivity = .face) -> (labels: [Int32], sizes: [Int]) {
        let (nx, ny, nz) = (shape.x, shape.y, shape.z)
        let n = shape.spatialCount
        var ids = [Int32](repeating: 0, count: n)
        var sizes: [Int] = []
        var offsets: [(Int, Int, Int)] = []
        for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
            let d = abs(dx) + abs(dy) + abs(dz)
            if d == 0 || (nz == 1 && dz != 0) { continue }
            if connectivity == .face && d > 1 { continue }
            offsets.append((dx, dy, dz))
        } } }
        var stack: [Int] = []
        voxels.withUnsafeBufferPointer { v in
            for start in 0..<n where v[start] != 0 && ids[start] == 0 {
                let id = Int32(sizes.count + 1)
                ids[start] = id
                stack.append(start)
                var count = 0
                while let p = stack.popLast() {
                    count += 1
                    let i = p % nx, j = (p / nx) % ny, k = p / (nx * ny)
                    for (dx, dy, dz) in offsets {
                        let a = i + dx, b = j + dy, c = k + dz
                        if a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz { continue }
                        let q = a + nx * (b + ny * c)
                        if v[q] != 0 && ids[q] == 0 { ids[q] = id; stack.append(q) }
                    }
                }
                sizes.append(count)
            }
        }
        // Renumber by decreasing size (stable).
        let order = sizes.indices.sorted { sizes[$0] > sizes[$1] || (sizes[$0] == sizes[$1] && $0 < $1) }
        var newId = [Int32](repeating: 0, count: sizes.count + 1)
        for (rank, old) in order.enumerated() { newId[old + 1] = Int32(rank + 1) }
        for i in 0..<n where ids[i] != 0 { ids[i] = newId[Int(ids[i])] }
        return (ids, order.map { sizes[$0] })
    }

    /// For each label value, keeps only its `count` largest connected components (nnU-Net's post-processing).
    public func keepingLargestComponents(_ count: Int = 1, connectivity: Connectivity = .face) -> MedicalImage {
        var r = self
        for label in distinctValues where label != 0 {
            let single = binarized(labels: [label])
            let (ids, _) = single.connectedComponents(connectivity: connectivity)
            for i in 0..<ids.count where ids[i] > Int32(count) { r.voxels[i] = 0 }
        }
        return r
    }

    /// Fills holes: background regions (face-connected, per label value) that do not touch the image border take
    /// the label that encloses them (as SciPy's `binary_fill_holes`, per label; 2-D images are filled in-plane).
    public func holesFilled() -> MedicalImage {
        var r = self
        let (nx, ny, nz) = (shape.x, shape.y, shape.z)
        for label in distinctValues where label != 0 {
            let outside = MedicalImage(shape: ImageShape(nx, ny, nz), voxels: voxels[0..<shape.spatialCount].map { $0 == label ? 0 : 1 })
            let (ids, sizes) = outside.connectedComponents(connectivity: .face)
            var touches = [Bool](repeating: false, count: sizes.count + 1)
            for k in 0..<nz { for j in 0..<ny { for i in 0..<nx {
                let border = i == 0 || j == 0 || i == nx - 1 || j == ny - 1 || (nz > 1 && (k == 0 || k == nz - 1))
                if border { touches[Int(ids[i + nx * (j + ny * k)])] = true }
            } } }
            for i in 0..<ids.count where ids[i] != 0 && !touches[Int(ids[i])] { r.voxels[i] = label }
        }
        return r
    }

    /// Volume in mm^3 of every non-zero label value.
    public func labelVolumes() -> [Float: Double] {
        var counts: [Float: Int] = [:]
        for v in voxels[0..<shape.spatialCount] where v != 0 { counts[v, default: 0] += 1 }
        let unit = voxelVolume
        return counts.mapValues { Double($0) * unit }
    }
}
