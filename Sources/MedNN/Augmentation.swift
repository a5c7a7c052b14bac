import Foundation
import MedTensor
import MedFoundation

/// nnU-Net-style data augmentation of 2-D segmentation batches, each transform with its probability per image
/// (``TrainingConfig``): rotation and scaling, elastic deformation, blur, flips, intensity jitter, gamma, noise.
/// Images bilinear, labels nearest; every draw comes from the caller's generator, so augmentation is reproducible.
public struct Augmenter: Sendable {
    public let config: TrainingConfig
    public init(_ config: TrainingConfig) { self.config = config }

    /// Per image, each with its probability: rotation and scaling, flips (W and H), gamma, intensity jitter, noise.
    /// Every draw comes from `rng`, so the augmentation is reproducible.
    public func apply(_ x: inout Tensor, _ y: inout [Float], rng: inout SplitMix64) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var data = x.data
        let plane = h * w
        for b in 0..<n {
            // Spatial: inverse-map every output pixel through the rotation and scale about the centre.
            if config.spatialProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.spatialProbability {
                let angle = Double.random(in: -15...15, using: &rng) * .pi / 180, scale = Double.random(in: 0.85...1.15, using: &rng)
                let (ca, sa) = (cos(angle) / scale, sin(angle) / scale)
                let (cx, cy) = (Double(w - 1) / 2, Double(h - 1) / 2)
                let labels = Array(y[(b * plane)..<((b + 1) * plane)])
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    let src = Array(data[base..<(base + plane)])
                    src.withUnsafeBufferPointer { sp in
                        for j in 0..<h { for i in 0..<w {
                            let dx = Double(i) - cx, dy = Double(j) - cy
                            let sx = ca * dx + sa * dy + cx, sy = -sa * dx + ca * dy + cy
                            data[base + j * w + i] = bilinear(sp.baseAddress!, width: w, height: h, x: Float(sx), y: Float(sy))
                            if ch == 0 {
                                let nx = Int(sx.rounded()), ny = Int(sy.rounded())
                                y[b * plane + j * w + i] = nx >= 0 && nx < w && ny >= 0 && ny < h ? labels[ny * w + nx] : 0
                            }
                        } }
                    }
                }
            }
            if config.elasticProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.elasticProbability {
                elastic(&data, &y, b, c: c, h: h, w: w, rng: &rng)
            }
            if config.blurProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.blurProbability {
                let sigma = Float.random(in: 0.5...1.5, using: &rng)
                for ch in 0..<c { Augmenter.blur(&data, base: (b * c + ch) * plane, h: h, w: w, sigma: sigma) }
            }
            let flipX = config.flips && Bool.random(using: &rng), flipY = config.flips && Bool.random(using: &rng)
            let jitter = config.intensityJitter > 0 && Bool.random(using: &rng)
            let scale = jitter ? Float.random(in: (1 - config.intensityJitter)...(1 + config.intensityJitter), using: &rng) : 1
            let shift = jitter ? Float.random(in: -config.intensityJitter...config.intensityJitter, using: &rng) : 0
            let gamma: Float? = config.gammaProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.gammaProbability
                ? Float.random(in: 0.7...1.5, using: &rng) : nil
            let noise: Float? = config.noiseProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.noiseProbability
                ? Float.random(in: 0...0.1, using: &rng) : nil
            if flipX || flipY || jitter {
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    let src = Array(data[base..<(base + plane)])
                    for j in 0..<h { for i in 0..<w {
                        let sj = flipY ? h - 1 - j : j, si = flipX ? w - 1 - i : i
                        data[base + j * w + i] = src[sj * w + si] * scale + shift
                    } }
                }
                if flipX || flipY {
                    let base = b * plane
                    let src = Array(y[base..<(base + plane)])
                    for j in 0..<h { for i in 0..<w { y[base + j * w + i] = src[(flipY ? h - 1 - j : j) * w + (flipX ? w - 1 - i : i)] } }
                }
            }
            if let gamma {
                // nnU-Net's gamma: rescale to [0, 1], apply, scale back.
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    let lo = data[base..<(base + plane)].min()!, hi = data[base..<(base + plane)].max()!
                    guard hi > lo else { continue }
                    for k in base..<(base + plane) { data[k] = lo + (hi - lo) * Foundation.pow((data[k] - lo) / (hi - lo), gamma) }
                }
            }
            if let noise {
                for k in (b * c * plane)..<((b + 1) * c * plane) {
                    let u1 = max(Float.random(in: 0..<1, using: &rng), 1e-7), u2 = Float.random(in: 0..<1, using: &rng)
                    data[k] += noise * (-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2)
                }
            }
        }
        x = Tensor(shape: x.shape, data: data)
    }

    /// Elastic deformation of image b: displacements drawn per pixel, smoothed (sigma = side / 16), scaled to at
    /// most about side / 16 pixels; image bilinear, labels nearest.
    func elastic(_ data: inout [Float], _ y: inout [Float], _ b: Int, c: Int, h: Int, w: Int, rng: inout SplitMix64) {
        let plane = h * w
        var dx = (0..<plane).map { _ in Float.random(in: -1...1, using: &rng) }, dy = (0..<plane).map { _ in Float.random(in: -1...1, using: &rng) }
        let sigma = Float(max(h, w)) / 16
        Augmenter.blur(&dx, base: 0, h: h, w: w, sigma: sigma)
        Augmenter.blur(&dy, base: 0, h: h, w: w, sigma: sigma)
        let peak = max(1e-6, max(dx.map(abs).max()!, dy.map(abs).max()!))
        let amplitude = Float(max(h, w)) / 16 / peak
        let labels = Array(y[(b * plane)..<((b + 1) * plane)])
        for ch in 0..<c {
            let base = (b * c + ch) * plane
            let src = Array(data[base..<(base + plane)])
            src.withUnsafeBufferPointer { sp in
                for j in 0..<h { for i in 0..<w {
                    let sx = Float(i) + dx[j * w + i] * amplitude, sy = Float(j) + dy[j * w + i] * amplitude
                    data[base + j * w + i] = bilinear(sp.baseAddress!, width: w, height: h, x: sx, y: sy)
                    if ch == 0 {
                        let nx = min(max(Int(sx.rounded()), 0), w - 1), ny = min(max(Int(sy.rounded()), 0), h - 1)
                        y[b * plane + j * w + i] = labels[ny * w + nx]
                    }
                } }
            }
        }
    }

    /// Approximate Gaussian blur of one plane in place (three box passes per axis, edges clamped).
    public static func blur(_ data: inout [Float], base: Int, h: Int, w: Int, sigma: Float) {
        let r = max(1, Int(((4 * sigma * sigma + 1).squareRoot() - 1) / 2 + 0.5))
        let inv = 1 / Float(2 * r + 1)
        func pass(_ line: inout [Float]) {
            let n = line.count
            var out = line
            var acc: Float = 0
            for k in -r...r { acc += line[min(max(k, 0), n - 1)] }
            for i in 0..<n { out[i] = acc * inv; acc += line[min(i + r + 1, n - 1)] - line[max(i - r, 0)] }
            line = out
        }
        for j in 0..<h {
            var line = Array(data[(base + j * w)..<(base + (j + 1) * w)])
            for _ in 0..<3 { pass(&line) }
            for i in 0..<w { data[base + j * w + i] = line[i] }
        }
        for i in 0..<w {
            var line = (0..<h).map { data[base + $0 * w + i] }
            for _ in 0..<3 { pass(&line) }
            for j in 0..<h { data[base + j * w + i] = line[j] }
        }
    }

}
