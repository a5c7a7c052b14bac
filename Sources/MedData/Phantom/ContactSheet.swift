import Foundation
import MedFormats
import MedImage

/// A small RGB picture of one case with its mask outlines, for contact sheets.
struct Thumbnail: Sendable {
    static let side = 128
    var rgb: [[Float]]      // 3 planes of side x side, [0, 1]

    init(gray: Plane, mask: Plane) { self.init(rgb: [gray, gray, gray], mask: mask) }

    init(rgb planes: [Plane], mask: Plane) {
        let n = Thumbnail.side
        let (w, h) = (planes[0].width, planes[0].height)
        let scale = Double(max(w, h)) / Double(n)
        // Area average over the source pixels of each thumbnail pixel; the mask by its value at the centre.
        var out = [[Float]](repeating: [Float](repeating: 0, count: n * n), count: 3)
        var m = [Float](repeating: 0, count: n * n)
        let ox = (Double(n) - Double(w) / scale) / 2, oy = (Double(n) - Double(h) / scale) / 2
        for j in 0..<n {
            for i in 0..<n {
                let x0 = (Double(i) - ox) * scale, y0 = (Double(j) - oy) * scale
                guard x0 >= 0, y0 >= 0, x0 < Double(w), y0 < Double(h) else { continue }
                let xs = Int(x0), ys = Int(y0), xe = min(w, max(xs + 1, Int(x0 + scale))), ye = min(h, max(ys + 1, Int(y0 + scale)))
                for c in 0..<3 {
                    var acc: Float = 0
                    for y in ys..<ye { for x in xs..<xe { acc += planes[c].data[y * w + x] } }
                    out[c][j * n + i] = acc / Float((xe - xs) * (ye - ys))
                }
                m[j * n + i] = mask.data[min(h - 1, Int(y0 + scale / 2)) * w + min(w - 1, Int(x0 + scale / 2))]
            }
        }
        // Outlines: a pixel whose label differs from a 4-neighbour's; red for the outer structure, yellow inside.
        for j in 1..<(n - 1) {
            for i in 1..<(n - 1) {
                let v = m[j * n + i]
                guard v > 0 else { continue }
                let edge = [m[j * n + i - 1], m[j * n + i + 1], m[(j - 1) * n + i], m[(j + 1) * n + i]].contains { $0 != v }
                guard edge else { continue }
                let colour: [Float] = v == 128 ? [1, 0.9, 0] : [1, 0.1, 0.1]
                for c in 0..<3 { out[c][j * n + i] = colour[c] }
            }
        }
        rgb = out
    }
}

/// Sites as rows (each labelled with its name on the left), cases as columns, 2-pixel gutters: one PNG a person can
/// look at.
enum ContactSheet {
    static func write(rows: [[Thumbnail]], labels: [String], to path: String) throws {
        let t = Thumbnail.side, gap = 2, scale = 2
        let cols = max(1, rows.map(\.count).max() ?? 1)
        let margin = (labels.map { BitmapFont.width($0, scale: scale) }.max() ?? 0) + 12
        let w = margin + cols * (t + gap) + gap, h = rows.count * (t + gap) + gap
        var voxels = [Float](repeating: 40, count: 3 * w * h)
        for (r, label) in labels.enumerated() where r < rows.count {
            let y0 = gap + r * (t + gap) + (t - 7 * scale) / 2
            BitmapFont.draw(label, x: 6, y: y0, scale: scale) { x, y in
                guard x >= 0, x < w, y >= 0, y < h else { return }
                for ch in 0..<3 { voxels[ch * w * h + y * w + x] = 235 }
            }
        }
        for (r, row) in rows.enumerated() {
            for (c, th) in row.enumerated() {
                for j in 0..<t { for i in 0..<t {
                    let x = margin + gap + c * (t + gap) + i, y = gap + r * (t + gap) + j
                    for ch in 0..<3 { voxels[ch * w * h + y * w + x] = (min(1, max(0, th.rgb[ch][j * t + i])) * 255).rounded() }
                } }
            }
        }
        let image = MedicalImage(shape: ImageShape(w, h, 1, 3), voxels: voxels, info: ImageInfo(storedType: .uint8, spacingIsKnown: false, components: .color))
        try PNGWriter.write(image, to: path, options: .init(bitDepth: 8))
    }
}
