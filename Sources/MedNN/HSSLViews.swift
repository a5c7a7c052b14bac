import Foundation
import MedTensor
import MedFoundation

// HSSL (Zheng et al., MICCAI 2021): multi-domain self-supervised pretraining of a whole U-Net encoder-decoder with a
// contrastive and a classification loss. Our reading, documented in Docs/learning.md: two augmented views of each
// image; a global NT-Xent term on the pooled bottleneck through a projection head; a dense NT-Xent term on the last
// decoder block's feature maps at locations that correspond under the known crop and flip; a cross-entropy term
// classifying each image's domain (dataset, or dataset/site) from the pooled bottleneck.

// This file: the two views of an image and their geometry.

/// Where a view came from: the square crop of the source image it shows and whether it was flipped left-right.
/// Coordinates are continuous source-pixel coordinates (pixel k covers [k, k + 1), its centre is k + 0.5).
public struct ViewGeometry: Sendable, Equatable {
    /// Left and top edges of the crop, and its side, in source pixels.
    public var x0: Float, y0: Float, side: Float
    public var flip: Bool
    /// The view's side in pixels (the source's side: crops are resized back).
    public var size: Int
    public init(x0: Float, y0: Float, side: Float, flip: Bool, size: Int) {
        self.x0 = x0; self.y0 = y0; self.side = side; self.flip = flip; self.size = size
    }
    /// The whole image, unflipped.
    public static func identity(size: Int) -> ViewGeometry { ViewGeometry(x0: 0, y0: 0, side: Float(size), flip: false, size: size) }

    var step: Float { side / Float(size) }

    /// The source point at the centre of view pixel (column i, row j).
    public func sourcePoint(i: Int, j: Int) -> (x: Float, y: Float) {
        let column = flip ? size - 1 - i : i
        return (x0 + (Float(column) + 0.5) * step, y0 + (Float(j) + 0.5) * step)
    }

    /// The view pixel (column, row) whose centre is nearest to the source point (x, y), clamped into the view.
    public func viewPixel(x: Float, y: Float) -> (i: Int, j: Int) {
        let column = min(max(Int(((x - x0) / step - 0.5).rounded()), 0), size - 1)
        let row = min(max(Int(((y - y0) / step - 0.5).rounded()), 0), size - 1)
        return (flip ? size - 1 - column : column, row)
    }

    /// The view of `channels` planes of side `size` (row-major, channel after channel): each view pixel takes the
    /// source bilinearly at ``sourcePoint(i:j:)`` (edges clamped).
    public func render(_ source: [Float], channels: Int) -> [Float] {
        let s = size
        var out = [Float](repeating: 0, count: channels * s * s)
        source.withUnsafeBufferPointer { src in
            for ch in 0..<channels {
                let base = ch * s * s
                for j in 0..<s { for i in 0..<s {
                    let p = sourcePoint(i: i, j: j)
                    // In pixel-index coordinates.
                    out[base + j * s + i] = bilinear(src.baseAddress! + base, width: s, height: s, x: p.x - 0.5, y: p.y - 0.5)
                } }
            }
        }
        return out
    }

    /// Pairs of view pixels (in `a`, in `b`) that show the same source point: the centres of a grid x grid
    /// partition of the two crops' overlap, each mapped into both views. Empty when the crops do not overlap.
    public static func correspondences(_ a: ViewGeometry, _ b: ViewGeometry, grid: Int) -> [(a: (i: Int, j: Int), b: (i: Int, j: Int))] {
        let left = max(a.x0, b.x0), right = min(a.x0 + a.side, b.x0 + b.side)
        let top = max(a.y0, b.y0), bottom = min(a.y0 + a.side, b.y0 + b.side)
        guard right > left, bottom > top, grid >= 1 else { return [] }
        var out: [(a: (i: Int, j: Int), b: (i: Int, j: Int))] = []
        for gy in 0..<grid { for gx in 0..<grid {
            let x = left + (Float(gx) + 0.5) * (right - left) / Float(grid), y = top + (Float(gy) + 0.5) * (bottom - top) / Float(grid)
            out.append((a.viewPixel(x: x, y: y), b.viewPixel(x: x, y: y)))
        } }
        return out
    }
}

/// SimCLR-style augmentation for (z-scored) medical images, each view with its geometry: a random square crop of
/// area fraction [cropScale, 1] resized back, a left-right flip (p 0.5), intensity scale and shift, a 3x3 blur
/// (p 0.5) and Gaussian noise (p 0.5). Every draw comes from the generator given, so views are reproducible.
public struct ContrastiveAugmentation: Sendable, Codable, Equatable {
    public var cropScale: Float = 0.3
    public var flips = true
    /// Intensity x U(1 − s, 1 + s) + U(−t, t).
    public var intensityScale: Float = 0.25, intensityShift: Float = 0.25
    public var blurProbability: Float = 0.5
    public var noiseProbability: Float = 0.5, noiseSigma: Float = 0.1
    public init() {}
    /// No augmentation: the whole image unchanged (both views equal; for tests and ablations).
    public static var none: ContrastiveAugmentation {
        var a = ContrastiveAugmentation()
        a.cropScale = 1; a.flips = false; a.intensityScale = 0; a.intensityShift = 0; a.blurProbability = 0; a.noiseProbability = 0
        return a
    }
    enum CodingKeys: String, CodingKey {
        case cropScale = "crop_scale", flips, intensityScale = "intensity_scale", intensityShift = "intensity_shift"
        case blurProbability = "blur_p", noiseProbability = "noise_p", noiseSigma = "noise_sigma"
    }

    /// A random geometry for an image of side `size`.
    public func geometry(size: Int, rng: inout SplitMix64) -> ViewGeometry {
        let area = cropScale < 1 ? Float.random(in: cropScale...1, using: &rng) : 1
        let side = Float(size) * area.squareRoot()
        let x0 = Float.random(in: 0...(Float(size) - side), using: &rng), y0 = Float.random(in: 0...(Float(size) - side), using: &rng)
        let flip = flips && Bool.random(using: &rng)
        return ViewGeometry(x0: x0, y0: y0, side: side, flip: flip, size: size)
    }

    /// One view of an image ([channels, size, size] values) and where it came from.
    public func view(of image: [Float], channels: Int, size: Int, rng: inout SplitMix64) -> (values: [Float], geometry: ViewGeometry) {
        let g = geometry(size: size, rng: &rng)
        var v = g.render(image, channels: channels)
        let scale = 1 + Float.random(in: -intensityScale...intensityScale, using: &rng), shift = Float.random(in: -intensityShift...intensityShift, using: &rng)
        for k in v.indices { v[k] = v[k] * scale + shift }
        if Float.random(in: 0..<1, using: &rng) < blurProbability { v = Self.blur(v, channels: channels, size: size) }
        if Float.random(in: 0..<1, using: &rng) < noiseProbability {
            let sigma = Float.random(in: 0...noiseSigma, using: &rng)
            for k in stride(from: 0, to: v.count, by: 2) {
                // Box-Muller: two normal draws per pair of uniforms.
                let u1 = max(Float.random(in: 0..<1, using: &rng), 1e-7), u2 = Float.random(in: 0..<1, using: &rng)
                let r = (-2 * Foundation.log(u1)).squareRoot()
                v[k] += sigma * r * Foundation.cos(2 * .pi * u2)
                if k + 1 < v.count { v[k + 1] += sigma * r * Foundation.sin(2 * .pi * u2) }
            }
        }
        return (v, g)
    }

    /// Separable [1, 2, 1] / 4 blur per plane (edges clamped).
    static func blur(_ v: [Float], channels: Int, size s: Int) -> [Float] {
        var tmp = v, out = v
        for ch in 0..<channels {
            let base = ch * s * s
            for j in 0..<s { for i in 0..<s {
                tmp[base + j * s + i] = 0.25 * v[base + j * s + max(i - 1, 0)] + 0.5 * v[base + j * s + i] + 0.25 * v[base + j * s + min(i + 1, s - 1)]
            } }
            for j in 0..<s { for i in 0..<s {
                out[base + j * s + i] = 0.25 * tmp[base + max(j - 1, 0) * s + i] + 0.5 * tmp[base + j * s + i] + 0.25 * tmp[base + min(j + 1, s - 1) * s + i]
            } }
        }
        return out
    }
}
