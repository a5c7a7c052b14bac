import Foundation

/// A box of voxel indices: `lower` inclusive, `upper` exclusive, per axis (x, y, z).
public struct VoxelRegion: Sendable, Equatable, Hashable, Codable {
    public var lower: [Int]
    public var upper: [Int]
    public init(lower: [Int], upper: [Int]) {
        precondition(lower.count == 3 && upper.count == 3, "a region has 3 lower and 3 upper bounds")
        self.lower = lower
        self.upper = upper
    }
    public var size: [Int] { (0..<3).map { upper[$0] - lower[$0] } }
    public var isEmpty: Bool { size.contains { $0 <= 0 } }
}

extension MedicalImage {
    /// The world affine of a sub-grid starting at voxel `offset` (origin moved, directions and spacing kept).
    func shiftedAffine(by offset: [Int]) -> Affine {
        var a = affine
        let (x, y, z) = affine.apply((Double(offset[0]), Double(offset[1]), Double(offset[2])))
        a[0, 3] = x; a[1, 3] = y; a[2, 3] = z
        return a
    }

    /// Copies the region [lower, upper) into a new image; parts of the region outside the image are filled with
    /// `fill`, so the same call crops and pads. The affine is shifted so voxels keep their world positions.
    public func extract(_ region: VoxelRegion, fill: Float = 0) throws -> MedicalImage {
        guard !region.isEmpty else { throw ImageError.invalidArgument("empty region \(region.lower)..<\(region.upper)") }
        let size = region.size
        try MemoryLimit.check(dimensions: size + [shape.t, MemoryLayout<Float>.size], what: "a \(size.map(String.init).joined(separator: " x ")) region")
        let newShape = ImageShape(size[0], size[1], size[2], shape.t)
        var out = [Float](repeating: fill, count: newShape.count)
        let lo = region.lower
        let (nx, ny, nz) = (shape.x, shape.y, shape.z)
        voxels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let i0 = max(0, lo[0]), i1 = min(nx, region.upper[0])
                guard i0 < i1 else { return }
                for c in 0..<shape.t {
                    for k in max(0, lo[2])..<max(max(0, lo[2]), min(nz, region.upper[2])) {
                        for j in max(0, lo[1])..<max(max(0, lo[1]), min(ny, region.upper[1])) {
                            let s = i0 + nx * (j + ny * (k + nz * c))
                            let d = (i0 - lo[0]) + size[0] * ((j - lo[1]) + size[1] * ((k - lo[2]) + size[2] * c))
                            (dst.baseAddress! + d).update(from: src.baseAddress! + s, count: i1 - i0)
                        }
                    }
                }
            }
        }
        return MedicalImage(shape: newShape, voxels: out, affine: shiftedAffine(by: lo), kind: kind, info: info)
    }

    /// Crops or pads symmetrically (extra voxel at the end) to `size` (x, y, z), as MONAI's `ResizeWithPadOrCrop`.
    public func cropOrPad(to size: [Int], fill: Float = 0) throws -> MedicalImage {
        guard size.count == 3, size.allSatisfy({ $0 > 0 }) else {
            throw ImageError.invalidArgument("target size must be 3 positive numbers, got \(size)")
        }
        let current = [shape.x, shape.y, shape.z]
        var lower = [0, 0, 0]
        for d in 0..<3 {
            let diff = current[d] - size[d]
            lower[d] = diff >= 0 ? diff / 2 : -((-diff) / 2)   // crop: floor half before; pad: floor half before
        }
        return try extract(VoxelRegion(lower: lower, upper: (0..<3).map { lower[$0] + size[$0] }), fill: fill)
    }

    /// The smallest region holding every voxel above `threshold` (any channel), or nil when there is none.
    public func foregroundBox(threshold: Float = 0) -> VoxelRegion? {
        var lo = [Int.max, Int.max, Int.max], hi = [-1, -1, -1]
        let (nx, ny, nz) = (shape.x, shape.y, shape.z)
        voxels.withUnsafeBufferPointer { v in
            for c in 0..<shape.t { for k in 0..<nz { for j in 0..<ny {
                let row = nx * (j + ny * (k + nz * c))
                for i in 0..<nx where v[row + i] > threshold {
                    if i < lo[0] { lo[0] = i }; if i > hi[0] { hi[0] = i }
                    if j < lo[1] { lo[1] = j }; if j > hi[1] { hi[1] = j }
                    if k < lo[2] { lo[2] = k }; if k > hi[2] { hi[2] = k }
                }
            } } }
        }
        if hi[0] < 0 { return nil }
        return VoxelRegion(lower: lo, upper: hi.map { $0 + 1 })
    }

    /// Crops to the foreground bounding box grown by `margin` voxels per axis (clamped to the image).
    public func croppedToForeground(threshold: Float = 0, margin: [Int] = [0, 0, 0]) throws -> MedicalImage {
        guard let box = foregroundBox(threshold: threshold) else {
            throw ImageError.invalidArgument("no voxel above \(threshold): nothing to crop to")
        }
        let dims = [shape.x, shape.y, shape.z]
        let lower = (0..<3).map { max(0, box.lower[$0] - margin[$0]) }
        let upper = (0..<3).map { min(dims[$0], box.upper[$0] + margin[$0]) }
        return try extract(VoxelRegion(lower: lower, upper: upper))
    }

    /// A 2-D image: the slice at `index` along voxel `axis` (0, 1 or 2), with its own 2-D geometry: the remaining two
    /// axes (in their original order) become i and j, and the affine's third column is the sliced axis' direction, so
    /// the slice knows where it lies in the volume.
    public func slice(axis: Int, index: Int) throws -> MedicalImage {
        let dims = [shape.x, shape.y, shape.z]
        guard (0..<3).contains(axis) else { throw ImageError.invalidArgument("slice axis must be 0, 1 or 2, got \(axis)") }
        guard (0..<dims[axis]).contains(index) else {
            throw ImageError.invalidArgument("slice \(index) is outside 0..<\(dims[axis]) along axis \(axis)")
        }
        let keep = (0..<3).filter { $0 != axis }
        let (a, b) = (keep[0], keep[1])
        let newShape = ImageShape(dims[a], dims[b], 1, shape.t)
        let strides = [1, shape.x, shape.x * shape.y]
        var out = [Float](repeating: 0, count: newShape.count)
        voxels.withUnsafeBufferPointer { src in
            for c in 0..<shape.t {
                let base = c * shape.spatialCount + index * strides[axis]
                for j in 0..<dims[b] { for i in 0..<dims[a] {
                    out[i + dims[a] * (j + dims[b] * c)] = src[base + i * strides[a] + j * strides[b]]
                } }
            }
        }
        var offset = [0, 0, 0]
        offset[axis] = index
        let shifted = shiftedAffine(by: offset)
        var m = Affine.identity
        for r in 0..<3 {
            m[r, 0] = affine[r, a]
            m[r, 1] = affine[r, b]
            m[r, 2] = affine[r, axis]
            m[r, 3] = shifted[r, 3]
        }
        return MedicalImage(shape: newShape, voxels: out, affine: m, kind: kind, info: info)
    }

    /// All slices along `axis`.
    public func slices(axis: Int = 2) throws -> [MedicalImage] {
        let n = [shape.x, shape.y, shape.z][axis]
        return try (0..<n).map { try slice(axis: axis, index: $0) }
    }

    /// Stacks 2-D slices (as produced by ``slice(axis:index:)`` along `axis`) back into a volume. The result's affine
    /// comes from the first slice, so slice then stack is the identity.
    public static func stack(_ slices: [MedicalImage], axis: Int = 2) throws -> MedicalImage {
        guard let first = slices.first else { throw ImageError.invalidArgument("no slices to stack") }
        guard (0..<3).contains(axis) else { throw ImageError.invalidArgument("stack axis must be 0, 1 or 2, got \(axis)") }
        for s in slices where s.shape != first.shape {
            throw ImageError.geometryMismatch("slices differ in shape: \(first.shape) and \(s.shape)")
        }
        let (w, h, ch, n) = (first.shape.x, first.shape.y, first.shape.t, slices.count)
        var dims = [0, 0, 0]
        let keep = (0..<3).filter { $0 != axis }
        dims[keep[0]] = w; dims[keep[1]] = h; dims[axis] = n
        try MemoryLimit.check(dimensions: dims + [ch, MemoryLayout<Float>.size], what: "stacking \(n) slices of \(w) x \(h)")
        let shape = ImageShape(dims[0], dims[1], dims[2], ch)
        let strides = [1, dims[0], dims[0] * dims[1]]
        var out = [Float](repeating: 0, count: shape.count)
        for (s, img) in slices.enumerated() {
            for c in 0..<ch { for j in 0..<h { for i in 0..<w {
                out[c * shape.spatialCount + s * strides[axis] + i * strides[keep[0]] + j * strides[keep[1]]] = img.voxels[i + w * (j + h * c)]
            } } }
        }
        var a = Affine.identity
        for r in 0..<3 {
            a[r, keep[0]] = first.affine[r, 0]
            a[r, keep[1]] = first.affine[r, 1]
            a[r, axis] = first.affine[r, 2]
            a[r, 3] = first.affine[r, 3]
        }
        return MedicalImage(shape: shape, voxels: out, affine: a, kind: first.kind, info: first.info)
    }
}
