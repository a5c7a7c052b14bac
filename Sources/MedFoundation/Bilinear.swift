/// Bilinear interpolation in a plane of `width` x `height` values (row-major, x fastest) at pixel-index coordinates
/// (x, y) (pixel centres at integers), edges clamped: a point outside the plane takes the nearest edge's values. The
/// one sampler of the augmentations (rotation, elastic deformation, resized crops, HSSL's views).
@inlinable
public func bilinear(_ plane: UnsafePointer<Float>, width: Int, height: Int, x: Float, y: Float) -> Float {
    let xa = min(max(Int(x.rounded(.down)), 0), width - 1), ya = min(max(Int(y.rounded(.down)), 0), height - 1)
    let xb = min(xa + 1, width - 1), yb = min(ya + 1, height - 1)
    let fx = min(max(x - Float(xa), 0), 1), fy = min(max(y - Float(ya), 0), 1)
    return (plane[ya * width + xa] * (1 - fx) + plane[ya * width + xb] * fx) * (1 - fy)
        + (plane[yb * width + xa] * (1 - fx) + plane[yb * width + xb] * fx) * fy
}
