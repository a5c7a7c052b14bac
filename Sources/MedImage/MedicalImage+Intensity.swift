import Foundation

extension MedicalImage {
    /// Voxels of channel `c` (a contiguous slice of storage).
    func channelRange(_ c: Int) -> Range<Int> { (c * shape.spatialCount)..<((c + 1) * shape.spatialCount) }

    /// Percentiles (0...100) of the finite voxels, with NumPy's default linear interpolation between order statistics.
    /// Images above 4 million voxels use a deterministic strided sample of 4 million (as nnU-Net samples intensities).
    public func percentiles(_ qs: [Double], channel: Int? = nil) -> [Float] {
        let range = channel.map { channelRange($0) } ?? 0..<voxels.count
        let n = range.count
        let stride = max(1, n / 4_000_000)
        var values: [Float] = []
        values.reserveCapacity(n / stride)
        var i = range.lowerBound
        while i < range.upperBound { let v = voxels[i]; if v.isFinite { values.append(v) }; i += stride }
        guard !values.isEmpty else { return qs.map { _ in .nan } }
        values.sort()
        return qs.map { q in
            let pos = min(max(q, 0), 100) / 100 * Double(values.count - 1)
            let lo = Int(pos.rounded(.down)), hi = min(lo + 1, values.count - 1)
            let f = pos - Double(lo)
            return Float(Double(values[lo]) * (1 - f) + Double(values[hi]) * f)
        }
    }

    /// Values limited to [lower, upper].
    public func clipped(min lower: Float, max upper: Float) -> MedicalImage {
        var r = self
        r.voxels.withUnsafeMutableBufferPointer { v in for i in v.indices { v[i] = Swift.min(Swift.max(v[i], lower), upper) } }
        return r
    }

    /// Values limited to the given percentiles, per channel (e.g. 0.5 and 99.5 as nnU-Net does for CT).
    public func clipped(toPercentiles lower: Double, _ upper: Double) -> MedicalImage {
        var r = self
        for c in 0..<shape.t {
            let p = percentiles([lower, upper], channel: c)
            let range = channelRange(c)
            r.voxels.withUnsafeMutableBufferPointer { v in
                for i in range { v[i] = Swift.min(Swift.max(v[i], p[0]), p[1]) }
            }
        }
        return r
    }

    /// (v - mean) / std per channel, with mean and (population) std taken over `mask > 0` when a mask is given
    /// (the whole image otherwise); std below 1e-8 is taken as 1e-8. Voxels outside the mask are normalised too.
    public func zScored(mask: MedicalImage? = nil) throws -> MedicalImage {
        if let m = mask, m.shape.spatialCount != shape.spatialCount {
            throw ImageError.geometryMismatch("mask shape \(m.shape) does not match image shape \(shape)")
        }
        var r = self
        for c in 0..<shape.t {
            let range = channelRange(c)
            var sum = 0.0, sq = 0.0, n = 0
            for (k, i) in range.enumerated() where mask.map({ $0.voxels[k] > 0 }) ?? true {
                let v = Double(voxels[i]); if !v.isFinite { continue }
                sum += v; sq += v * v; n += 1
            }
            guard n > 0 else {
                throw ImageError.invalidArgument(mask == nil
                    ? "the image has no finite value to normalise (every voxel is NaN or infinite)"
                    : "the foreground mask covers no voxel with a finite value, so there is nothing to compute the mean and spread from; check that the mask belongs to this image")
            }
            let mean = sum / Double(n)
            let std = Swift.max((Swift.max(0, sq / Double(n) - mean * mean)).squareRoot(), 1e-8)
            r.voxels.withUnsafeMutableBufferPointer { v in
                for i in range { v[i] = Float((Double(v[i]) - mean) / std) }
            }
        }
        r.info.storedType = .float32
        return r
    }

    /// Linear map of each channel's [min, max] to `range` (a constant channel maps to the range's lower end).
    public func minMaxScaled(to range: ClosedRange<Float> = 0...1) -> MedicalImage {
        var r = self
        for c in 0..<shape.t {
            let cr = channelRange(c)
            var lo = Float.infinity, hi = -Float.infinity
            for i in cr where voxels[i].isFinite { lo = Swift.min(lo, voxels[i]); hi = Swift.max(hi, voxels[i]) }
            let span = hi - lo
            r.voxels.withUnsafeMutableBufferPointer { v in
                for i in cr { v[i] = span > 0 ? range.lowerBound + (v[i] - lo) / span * (range.upperBound - range.lowerBound) : range.lowerBound }
            }
        }
        r.info.storedType = .float32
        return r
    }

    /// Counts of finite voxels in `bins` equal-width bins over `range` (default: the data's min...max), NumPy's
    /// `histogram` convention: the last bin includes its upper edge; values outside the range are not counted.
    public func histogram(bins: Int, range: ClosedRange<Float>? = nil, channel: Int? = nil) -> (counts: [Int], edges: [Float]) {
        precondition(bins > 0, "histogram needs at least one bin")
        let cr = channel.map { channelRange($0) } ?? 0..<voxels.count
        var lo = range?.lowerBound ?? .infinity, hi = range?.upperBound ?? -.infinity
        if range == nil { for i in cr where voxels[i].isFinite { lo = Swift.min(lo, voxels[i]); hi = Swift.max(hi, voxels[i]) } }
        if !lo.isFinite { return ([Int](repeating: 0, count: bins), []) }
        if hi == lo { lo -= 0.5; hi += 0.5 }
        var counts = [Int](repeating: 0, count: bins)
        let width = Double(hi - lo) / Double(bins)
        for i in cr {
            let v = voxels[i]
            guard v.isFinite, v >= lo, v <= hi else { continue }
            counts[Swift.min(bins - 1, Int(Double(v - lo) / width))] += 1
        }
        return (counts, (0...bins).map { lo + Float(Double($0) * width) })
    }
}
