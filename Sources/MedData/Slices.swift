import Foundation
import MedFormats
import MedImage

/// The 2-D input contract of the learned encoders (masked autoencoder pretraining and its embeddings): a 2-D image is
/// one slice; a volume gives up to `maxSlices` evenly spaced axial slices. Each slice is resampled to size x size
/// (linear, anti-aliased) and z-scored per channel over its pixels (non-finite values become 0); colour images keep
/// their channels.
public struct ImageSlices: Sendable {
    /// Slices [count, channels, size, size], row-major.
    public var values: [Float]
    public var count: Int
    public var channels: Int
    public var size: Int

    public init(values: [Float], count: Int, channels: Int, size: Int) {
        self.values = values; self.count = count; self.channels = channels; self.size = size
    }

    /// One gray channel per slice: colour slices (RGB) become luminance 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601,
    /// as PIL's convert("L")), other multi-channel slices their channel mean; each slice is z-scored again. Gray slices
    /// are returned as they are.
    public func grayscale() -> ImageSlices {
        guard channels > 1 else { return self }
        let plane = size * size
        let weights: [Float] = channels == 3 ? [0.299, 0.587, 0.114] : [Float](repeating: 1 / Float(channels), count: channels)
        var out = [Float](repeating: 0, count: count * plane)
        for k in 0..<count {
            for p in 0..<plane {
                var v: Float = 0
                for c in 0..<channels { v += weights[c] * values[(k * channels + c) * plane + p] }
                out[k * plane + p] = v
            }
            let slice = out[(k * plane)..<((k + 1) * plane)]
            let mean = slice.reduce(0, +) / Float(plane)
            let sd = (slice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(plane)).squareRoot()
            for p in 0..<plane { out[k * plane + p] = sd > 1e-8 ? (out[k * plane + p] - mean) / sd : 0 }
        }
        return ImageSlices(values: out, count: count, channels: 1, size: size)
    }

    /// Slice i's values.
    public func slice(_ i: Int) -> ArraySlice<Float> {
        let per = channels * size * size
        return values[(i * per)..<((i + 1) * per)]
    }
}

extension Sample {
    /// This case's slices under the encoders' input contract (``ImageSlices``).
    public func slices(size: Int, maxSlices: Int = 16, options: ReadOptions = .default) throws -> ImageSlices {
        let image = try loadImage(options: options)
        let channels = image.info.components == .color ? image.shape.t : 1
        let depth = image.shape.z
        let picks = depth <= maxSlices ? Array(0..<depth) : (0..<maxSlices).map { ($0 * depth + depth / 2) / maxSlices }
        var values: [Float] = []
        values.reserveCapacity(picks.count * channels * size * size)
        for k in picks {
            let plane = depth > 1 ? try image.slice(axis: 2, index: k) : image
            let resized = try plane.resampled(toShape: [size, size, 1]).zScored()
            values += resized.voxels.prefix(channels * size * size).map { $0.isFinite ? $0 : 0 }
        }
        return ImageSlices(values: values, count: picks.count, channels: channels, size: size)
    }
}
