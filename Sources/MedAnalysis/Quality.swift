import Foundation
import MedImage

/// Image-quality measures of MRQy (Sadri et al. 2020, "MRQy — an open-source tool for quality control of MR imaging
/// data", Medical Physics; github.com/ccipd/MRQy, `QCF.py`) on a foreground mask, per 2-D slice, averaged over the
/// slices of a volume that hold foreground (MRQy samples slices the same way).
///
/// With f the foreground values, b the background values, F the image with the background set to 0:
/// - `mean`, `range` (max − min) and `cv` = 100 · std(f) / mean(f) of the foreground;
/// - `snr` = std(f) / std(b) (MRQy's SNR1);
/// - `cnr` = mean(Pf − Pb) / std(Pb), Pf and Pb the 5 x 5 patches around the brightest pixel of F and of the
///   background image (MRQy's CNR);
/// - `cpp`, contrast per pixel: the mean of F filtered with the 3 x 3 kernel (1 in the centre, −1/8 around);
/// - `efc`, entropy focus criterion: Σ (F/B) ln(F/B) / EFC_max, B = √ΣF², EFC_max = N (1/√N) ln(1/√N) (both sums
///   negative: EFC lies in (0, 1], 1 when the energy is spread evenly over the slice, lower when focused);
/// - `fber`, foreground-background energy ratio: median(f²) / median(b²) (0 when the background has no energy);
/// - `cjv`, coefficient of joint variation: (std(f) + std(b)) / |mean(f) − mean(b)|.
///
/// Foreground: Otsu's threshold of the slice (MRQy also weighs in the histogram-equalised slice and takes the convex
/// hull of the result; this simpler mask is what is used here, documented in Docs).
public enum ImageQuality {
    public static let measures = ["mean", "range", "cv", "snr", "cnr", "cpp", "efc", "fber", "cjv"]

    /// The measures of an image (a volume: the mean over up to `maxSlices` evenly spaced axial slices with
    /// foreground); nil when no slice has both foreground and background. Uses the first channel.
    public static func measure(_ image: MedicalImage, maxSlices: Int = 16) -> [String: Double]? {
        let (w, h, nz) = (image.shape.x, image.shape.y, image.shape.z)
        let step = max(1, nz / maxSlices)
        var sums: [String: Double] = [:], counts: [String: Int] = [:]
        for k in stride(from: nz > 1 ? step / 2 : 0, to: nz, by: step) {
            let slice = Array(image.voxels[(k * w * h)..<((k + 1) * w * h)])
            guard let m = measureSlice(slice, width: w, height: h) else { continue }
            for (key, v) in m where v.isFinite { sums[key, default: 0] += v; counts[key, default: 0] += 1 }
        }
        guard !counts.isEmpty else { return nil }
        return sums.reduce(into: [:]) { $0[$1.key] = $1.value / Double(counts[$1.key]!) }
    }

    /// The measures of one slice (row-major, width x height), or nil without both foreground and background.
    public static func measureSlice(_ v: [Float], width w: Int, height h: Int) -> [String: Double]? {
        let finite = v.filter { $0.isFinite }
        guard finite.count == v.count, let lo = finite.min(), let hi = finite.max(), hi > lo else { return nil }
        let t = otsu(v, lo: lo, hi: hi)
        let mask = v.map { $0 > t }
        let f = zip(v, mask).filter { $0.1 }.map { Double($0.0) }, b = zip(v, mask).filter { !$0.1 }.map { Double($0.0) }
        guard f.count >= 2, b.count >= 2 else { return nil }
        let (mf, sf) = (Stats.mean(f), Stats.standardDeviation(f)), (mb, sb) = (Stats.mean(b), Stats.standardDeviation(b))
        let fore = zip(v, mask).map { $0.1 ? Double($0.0) : 0 }, back = zip(v, mask).map { $0.1 ? 0 : Double($0.0) }
        var out: [String: Double] = [:]
        out["mean"] = mf
        out["range"] = (f.max() ?? 0) - (f.min() ?? 0)
        out["cv"] = mf != 0 ? 100 * sf / mf : .nan
        out["snr"] = sb > 0 ? sf / sb : .nan
        let pf = patch(fore, w, h), pb = patch(back, w, h)
        let sdb = Stats.standardDeviation(pb)
        out["cnr"] = sdb > 0 ? Stats.mean(zip(pf, pb).map { $0 - $1 }) / sdb : .nan
        var cpp = 0.0
        for y in 0..<h { for x in 0..<w {
            var s = fore[y * w + x]
            for dy in -1...1 { for dx in -1...1 where dx != 0 || dy != 0 {
                let (xx, yy) = (x + dx, y + dy)
                if xx >= 0 && xx < w && yy >= 0 && yy < h { s -= fore[yy * w + xx] / 8 }
            } }
            cpp += s
        } }
        out["cpp"] = cpp / Double(w * h)
        let n = Double(w * h)
        let efcMax = n * (1 / n.squareRoot()) * log(1 / n.squareRoot())
        let energy = fore.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        if energy > 0 {
            out["efc"] = fore.reduce(0.0) { s, x in x > 0 ? s + (x / energy) * log(x / energy) : s } / efcMax
        }
        let bg = Stats.median(b.map { $0 * $0 })
        out["fber"] = bg < 1e-3 ? 0 : Stats.median(f.map { $0 * $0 }) / bg
        out["cjv"] = abs(mf - mb) > 0 ? (sf + sb) / abs(mf - mb) : .nan
        return out
    }

    /// The 5 x 5 values around the largest value of `image` (zero beyond the edges, as MRQy's padding).
    static func patch(_ image: [Double], _ w: Int, _ h: Int) -> [Double] {
        var at = 0
        for i in image.indices where image[i] > image[at] { at = i }
        let (cx, cy) = (at % w, at / w)
        var out: [Double] = []
        for dy in -2...2 { for dx in -2...2 {
            let (x, y) = (cx + dx, cy + dy)
            out.append(x >= 0 && x < w && y >= 0 && y < h ? image[y * w + x] : 0)
        } }
        return out
    }

    /// Otsu's threshold over a 256-bin histogram of [lo, hi]: the cut maximising the between-class variance (the
    /// middle of the cuts that tie, e.g. an empty gap between two modes).
    public static func otsu(_ v: [Float], lo: Float, hi: Float) -> Float {
        let bins = 256
        var hist = [Double](repeating: 0, count: bins)
        let scale = Float(bins) / (hi - lo)
        for x in v { hist[min(bins - 1, max(0, Int((x - lo) * scale)))] += 1 }
        let total = Double(v.count)
        let sumAll = (0..<bins).reduce(0.0) { $0 + Double($1) * hist[$1] }
        var wb = 0.0, sumB = 0.0, best = -1.0, first = 0, last = 0
        for i in 0..<(bins - 1) {
            wb += hist[i]; sumB += Double(i) * hist[i]
            let wf = total - wb
            if wb == 0 || wf == 0 { continue }
            let mb = sumB / wb, mf = (sumAll - sumB) / wf
            let between = wb * wf * (mb - mf) * (mb - mf)
            if between > best * (1 + 1e-12) { best = between; first = i; last = i } else if between >= best * (1 - 1e-12) { last = i }
        }
        return lo + (Float(first + last) / 2 + 1) / scale
    }
}
