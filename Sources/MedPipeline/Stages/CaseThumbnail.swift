import Foundation
import MedData
import MedFormats
import MedImage
import MedReport
import MedSelection

/// Pictures of cases for reports: a case's middle slice as a small PNG data URI, and a 2-D map of embedding rows.
public enum CaseThumbnail {
    /// The middle slice resampled to 96 x 96, scaled from its 1st to 99th percentile to 8 bits, as a PNG data URI;
    /// with `contour` (a label map on the image's grid, e.g. a prediction), the outline of its foreground drawn in
    /// yellow over a grey (or colour) picture.
    public static func uri(_ s: Sample, options: ReadOptions, contour: MedicalImage? = nil) throws -> String {
        let image = try s.loadImage(options: options)
        let middle = image.shape.z / 2
        let slice = image.shape.z > 1 ? try image.slice(axis: 2, index: middle) : image
        let channels = image.info.components == .color ? min(3, image.shape.t) : 1
        let small = try slice.resampled(toShape: [96, 96, 1])
        let plane = 96 * 96
        let sorted = small.voxels.prefix(plane * channels).filter { $0.isFinite }.sorted()
        let lo = sorted.isEmpty ? 0 : sorted[sorted.count / 100], hi = sorted.isEmpty ? 1 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        var outline: [Bool]? = nil
        if let contour {
            var c = contour.shape.z > 1 ? try contour.slice(axis: 2, index: min(middle, contour.shape.z - 1)) : contour
            c.kind = .labelMap
            let l = Array(try c.resampled(toShape: [96, 96, 1], interpolation: .nearest).voxels.prefix(plane))
            func differs(_ x: Int, _ y: Int, from v: Float) -> Bool { x < 0 || y < 0 || x >= 96 || y >= 96 || l[y * 96 + x] != v }
            outline = (0..<plane).map { p -> Bool in
                let (i, j, v) = (p % 96, p / 96, l[p])
                if v == 0 { return false }
                return differs(i - 1, j, from: v) || differs(i + 1, j, from: v) || differs(i, j - 1, from: v) || differs(i, j + 1, from: v)
            }
        }
        let out = outline == nil ? channels : 3
        var bytes = [UInt8](repeating: 0, count: plane * out)
        for p in 0..<plane {
            for c in 0..<out {
                let v = (small.voxels[min(c, channels - 1) * plane + p] - lo) / max(1e-12, hi - lo)
                // PNG rows run top down; image j runs down the rows for 2-D files, and volumes show the anatomy the same way up.
                bytes[p * out + c] = UInt8(max(0, min(255, (v * 255).rounded())))
            }
            if outline?[p] == true { bytes[p * 3] = 255; bytes[p * 3 + 1] = 214; bytes[p * 3 + 2] = 0 }
        }
        let png = try PNGWriter.encode(interleaved: bytes, width: 96, height: 96, channels: out, bitDepth: 8, spacing: nil)
        return "data:image/png;base64," + Data(png).base64EncodedString()
    }

    /// A 2-D map of the embeddings (their first two principal components).
    public static func map(_ values: [Float], dimensions d: Int, count n: Int, seed: UInt64) throws -> [Float] {
        let e = try Embeddings(values: values, count: n, dimensions: d)
        let model = try PCA.fit(e, components: min(2, d), seed: seed)
        let t = PCA.transform(e, model)
        return d >= 2 ? t : t.flatMap { [$0, 0] }
    }

    /// The pool map with the picks: every row at its map position coloured by its site (`sites` gives the legend's
    /// order), the picks in the palette's last colour (black), drawn last and numbered in pick order.
    public static func picksPlot(map: [Float], ids: [String], sites rowSites: [String], siteOrder: [String], picked: [String],
                                 title: String) -> ScatterPlot {
        let chosen = Set(picked)
        let selectedGroup = max(chartColors.count - 1, siteOrder.count)
        var points: [ScatterPlot.Point] = []
        for (i, id) in ids.enumerated() where !chosen.contains(id) {
            points.append(.init(x: Double(map[2 * i]), y: Double(map[2 * i + 1]), group: siteOrder.firstIndex(of: rowSites[i]) ?? 0))
        }
        let rank = Dictionary(picked.enumerated().map { ($0.element, $0.offset + 1) }, uniquingKeysWith: { a, _ in a })
        for (i, id) in ids.enumerated() where chosen.contains(id) {
            points.append(.init(x: Double(map[2 * i]), y: Double(map[2 * i + 1]), label: rank[id].map(String.init), group: selectedGroup))
        }
        var plot = ScatterPlot(title: title, xLabel: "principal component 1", yLabel: "principal component 2", points: points)
        plot.groups = siteOrder + [String](repeating: "", count: selectedGroup - siteOrder.count) + ["selected"]
        plot.width = 480; plot.height = 320
        return plot
    }
}
