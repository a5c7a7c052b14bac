import Foundation
import MedImage

/// One segment of a 3D Slicer segmentation: its `SegmentN_*` fields.
public struct SlicerSegment: Sendable, Equatable {
    public var index: Int
    public var id: String, name: String
    /// The voxel value that marks the segment in its layer.
    public var labelValue: Int
    /// The layer (the list axis' index) the segment lives in; 0 when the file has one layer.
    public var layer: Int
    /// The segment's value in the merged label map.
    public var outputLabel: Int
}

/// 3D Slicer segmentations (`.seg.nrrd`): an NRRD label map (one layer, 3-D) or a stack of layers (4-D, a `list` axis
/// first) with `SegmentN_LabelValue`, `SegmentN_Layer` and `SegmentN_Name` fields. Read as one label map: each
/// segment's voxels take its `LabelValue`, unless two segments share a value (in different layers), in which case
/// segments are numbered 1...N in their order in the file (a note says so). A voxel that two segments both cover (layers
/// exist for overlaps) is refused with the segments' names: a label map holds one label per voxel.
public enum SlicerSegmentation {
    /// Whether an NRRD header is a Slicer segmentation's.
    public static func isSegmentation(_ h: NRRDHeader) -> Bool {
        h.keyValues["Segment0_ID"] != nil || h.keyValues["Segmentation_MasterRepresentation"] != nil
    }

    /// The segments a header lists, in file order, with the label each gets in the merged map.
    public static func segments(_ h: NRRDHeader, path: String) throws -> (segments: [SlicerSegment], renumbered: Bool) {
        var out: [SlicerSegment] = []
        var i = 0
        while let id = h.keyValues["Segment\(i)_ID"] {
            guard let value = Int(h.keyValues["Segment\(i)_LabelValue"] ?? "1"), value >= 1 else {
                throw FormatError.invalidHeader(path: path, reason: "Segment\(i)_LabelValue is not a positive integer")
            }
            guard let layer = Int(h.keyValues["Segment\(i)_Layer"] ?? "0"), layer >= 0 else {
                throw FormatError.invalidHeader(path: path, reason: "Segment\(i)_Layer is not a layer index")
            }
            out.append(SlicerSegment(index: i, id: id, name: h.keyValues["Segment\(i)_Name"] ?? id, labelValue: value, layer: layer, outputLabel: value))
            i += 1
            if i > 10_000 { break }
        }
        let renumber = Set(out.map(\.labelValue)).count != out.count
        if renumber { for k in out.indices { out[k].outputLabel = k + 1 } }
        return (out, renumber)
    }

    /// The merged label map (kind label map, the file's space geometry) and its segments; `note` when the labels were
    /// renumbered.
    public static func read(_ path: String, options: ReadOptions = .default) throws -> (image: MedicalImage, segments: [SlicerSegment], note: String?) {
        let h = try NRRDReader.readHeader(path, options: options)
        let (segments, renumbered) = try segments(h, path: path)
        let layered = try NRRDReader.read(path, options: options)
        let layers = h.valueAxis.map { h.sizes[$0] } ?? 1
        let n = layered.shape.spatialCount
        guard layered.shape.t == layers else {
            throw FormatError.unsupported(path: path, reason: "a segmentation with \(layered.shape.t) values per voxel is not a stack of \(layers) layers")
        }
        for s in segments where s.layer >= layers {
            throw FormatError.invalidHeader(path: path, reason: "segment '\(s.name)' is in layer \(s.layer); the file has \(layers)")
        }
        var lookup: [Int: [Int: SlicerSegment]] = [:]   // layer -> stored value -> segment
        for s in segments { lookup[s.layer, default: [:]][s.labelValue] = s }
        var merged = [Float](repeating: 0, count: n)
        var owner = [Int32](repeating: -1, count: n)
        for layer in 0..<layers {
            let table = lookup[layer] ?? [:]
            for v in 0..<n {
                let stored = layered.voxels[layer * n + v]
                guard stored != 0 else { continue }
                guard stored == stored.rounded(), let s = table[Int(stored)] else {
                    throw FormatError.invalidHeader(path: path, reason: "layer \(layer) holds the value \(stored), which no segment's LabelValue names")
                }
                if owner[v] >= 0 {
                    let other = segments[Int(owner[v])]
                    throw FormatError.unsupported(path: path, reason: "segments '\(other.name)' and '\(s.name)' overlap (voxel \(v)); a label map holds one label per voxel: remove the overlap in 3D Slicer (Segment Editor, Logical operators) and save again")
                }
                owner[v] = Int32(s.index)
                merged[v] = Float(s.outputLabel)
            }
        }
        var info = layered.info
        info.components = .scalar
        let image = MedicalImage(shape: ImageShape(layered.shape.x, layered.shape.y, layered.shape.z, 1), voxels: merged, affine: layered.affine,
                                 kind: .labelMap, info: info)
        let note = renumbered ? "segments share label values across layers, so they are numbered in file order: "
            + segments.map { "\($0.name) \($0.outputLabel)" }.joined(separator: ", ") : nil
        return (image, segments, note)
    }

    /// `label` (a segmentation, often cropped to its segments' extent) on the grid of an image of `shape` with
    /// `affine`: the two must share directions and spacing and differ by a whole number of voxels; voxels outside the
    /// segmentation's extent are background.
    public static func placed(_ label: MedicalImage, onto shape: [Int], affine: Affine, path: String) throws -> MedicalImage {
        let a = label.affine
        for r in 0..<3 { for c in 0..<3 where abs(a[r, c] - affine[r, c]) > 1e-3 * max(1, abs(affine[r, c])) {
            throw FormatError.unsupported(path: path, reason: "its spacing or orientation differs from the image's; save the segmentation with the image as its reference (3D Slicer does by default)")
        } }
        // Voxel offset of the segmentation's first voxel in the image's grid.
        guard let inverse = affine.inverse else { throw FormatError.unsupported(path: path, reason: "the image's affine is singular") }
        let q = inverse.apply((a[0, 3], a[1, 3], a[2, 3]))
        let p = [q.0, q.1, q.2]
        let offset = p.map { Int($0.rounded()) }
        guard zip(p, offset).allSatisfy({ abs($0 - Double($1)) < 1e-2 }) else {
            throw FormatError.unsupported(path: path, reason: "it lies between the image's voxels (offset \(p.map { String(format: "%.2f", $0) }.joined(separator: ", "))); save it on the image's grid")
        }
        let (nx, ny, nz) = (shape[0], shape[1], max(1, shape[2]))
        var voxels = [Float](repeating: 0, count: nx * ny * nz)
        let s = label.shape
        for k in 0..<s.z { for j in 0..<s.y { for i in 0..<s.x {
            let (x, y, z) = (i + offset[0], j + offset[1], k + offset[2])
            guard x >= 0, x < nx, y >= 0, y < ny, z >= 0, z < nz else {
                if label.voxels[(k * s.y + j) * s.x + i] != 0 {
                    throw FormatError.unsupported(path: path, reason: "a segment reaches outside the image (voxel \(x), \(y), \(z)); save it with the image as its reference")
                }
                continue
            }
            voxels[(z * ny + y) * nx + x] = label.voxels[(k * s.y + j) * s.x + i]
        } } }
        return MedicalImage(shape: ImageShape(nx, ny, nz, 1), voxels: voxels, affine: affine, kind: .labelMap, info: label.info)
    }
}
