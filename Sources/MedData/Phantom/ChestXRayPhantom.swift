import Foundation

/// One synthetic posteroanterior chest radiograph and its lung masks.
///
/// Anatomy in a normalised chest frame (x to the image right = the patient's left, y down, unit = 170 mm times a
/// patient-size factor): soft tissue with a thickness falloff, two lungs whose outlines are rounded shapes with
/// random low-frequency deformations, the heart shadow (cut out of the lung fields, as manual masks do), mediastinum
/// and spine, posterior ribs, clavicles, and collimation borders. Attenuation becomes a display signal
/// s = (1 − exp(−1.8 A)) / (1 − exp(−2.9)) in [0, 1], to which the site's scanner model is applied.
/// Modes: `small_lungs` (lungs scaled by 0.75-0.82, raised diaphragm), `effusion` (fluid fills one costophrenic
/// angle with a meniscus; excluded from the mask), `cardiomegaly` (cardiothoracic ratio above 0.55).
struct ChestXRayPhantom {
    struct Output {
        var image: Plane          // [0, 1] signal after the scanner model
        var rightLung: Plane      // the patient's right lung (image left), 0/1
        var leftLung: Plane       // the patient's left lung (image right), 0/1
        var facts: [String: String]
    }

    static func render(site: ResolvedSite, mode: String, seed: UInt64, streams: [Int]) -> Output {
        var rng = PhantomRandom(seed: seed, streams: streams)
        let (w, h) = (site.size[0], site.size[1])
        let (sx, sy) = (site.spacing[0], site.spacing[1])
        let unit = 170.0 * rng.uniform(0.92, 1.08)
        let angle = rng.uniform(-site.rotation, site.rotation) * .pi / 180
        let (tx, ty) = (rng.uniform(-site.translation, site.translation), rng.uniform(-site.translation, site.translation))
        let (ca, sa) = (cos(angle), sin(angle))
        // Pixel -> chest frame.
        @inline(__always) func frame(_ i: Double, _ j: Double) -> (Double, Double) {
            let x = (i + 0.5 - Double(w) / 2) * sx - tx, y = (j + 0.5 - Double(h) / 2) * sy - ty
            return ((ca * x + sa * y) / unit, (-sa * x + ca * y) / unit)
        }
        // Chest frame -> pixel.
        func pixel(_ x: Double, _ y: Double) -> (Double, Double) {
            let X = x * unit, Y = y * unit
            let px = ca * X - sa * Y + tx, py = sa * X + ca * Y + ty
            return (px / sx + Double(w) / 2 - 0.5, py / sy + Double(h) / 2 - 0.5)
        }
        let lungScale = mode == "small_lungs" ? rng.uniform(0.75, 0.82) : rng.uniform(0.95, 1.05)
        let heart: (cx: Double, cy: Double, rx: Double, ry: Double) = mode == "cardiomegaly"
            ? (0.12, 0.30, rng.uniform(0.46, 0.52), rng.uniform(0.29, 0.33))
            : (0.1, 0.30, rng.uniform(0.27, 0.33), rng.uniform(0.21, 0.25))
        let effusionSide = rng.uniform() < 0.5 ? -1.0 : 1.0
        var right = Plane(w, h), left = Plane(w, h)
        var lungFrames: [(cx: Double, cy: Double, rx: Double, ry: Double)] = []
        for side in [-1.0, 1.0] {
            let cx = side * 0.42 * (0.9 + 0.1 * lungScale), cy = -0.08 - (mode == "small_lungs" ? 0.06 : 0)
            let rx = 0.3 * lungScale * rng.uniform(0.95, 1.05), ry = 0.62 * lungScale * rng.uniform(0.95, 1.05)
            lungFrames.append((cx, cy, rx, ry))
            let harmonics = (2...5).map { _ in (rng.normal() * 0.025, rng.uniform(0, 2 * .pi)) }
            var poly: [(Double, Double)] = []
            for v in 0..<120 {
                let t = Double(v) / 120 * 2 * .pi
                var r = 1.0
                for (k, hm) in harmonics.enumerated() { r += hm.0 * cos(Double(k + 2) * t + hm.1) }
                let taper = 0.62 + 0.38 * (1 + sin(t)) / 2     // narrow apex (sin < 0 is up)
                let x = cx + rx * cos(t) * taper * r, y = cy + ry * sin(t) * r
                poly.append(pixel(x, y))
            }
            if side < 0 { right.fill(polygon: poly, value: 1) } else { left.fill(polygon: poly, value: 1) }
        }
        // Cut the heart (and the effusion) out of the lung fields; render attenuation.
        let ribs = (0..<9).map { k in -0.78 + Double(k) * 0.165 + rng.uniform(-0.015, 0.015) }
        var atten = Plane(w, h)
        var fluidPixels = 0
        let hc = heart
        // The chest-frame coordinates are affine in (i, j): step along a row by (dxi, dyi).
        let dxi = ca * sx / unit, dyi = -sa * sx / unit
        let (irx, iry) = (1 / hc.rx, 1 / hc.ry)
        let ef = lungFrames[effusionSide < 0 ? 0 : 1]
        let isEffusion = mode == "effusion"
        atten.data.withUnsafeMutableBufferPointer { ab in
        right.data.withUnsafeMutableBufferPointer { rb in
        left.data.withUnsafeMutableBufferPointer { lb in
            let (ap, rp, lp) = (ab.baseAddress!, rb.baseAddress!, lb.baseAddress!)
            for j in 0..<h {
                var (x, y) = frame(0, Double(j))
                for i in 0..<w {
                    defer { x += dxi; y += dyi }
                    let k = j * w + i
                    let xn = x * (1 / 0.95), yb = (y - 0.1) * (1 / 1.15)
                    var a = 0.0
                    if xn * xn + yb * yb < 1 || y < -0.9 {
                        a = max(0, 1 - xn * xn).squareRoot() + 0.15
                        if abs(x) < 0.11 { a += 0.35 * (1 - abs(x) / 0.11) + 0.15 }
                    }
                    let hx = (x - hc.cx) * irx, hy = (y - hc.cy) * iry
                    let hr = hx * hx + hy * hy
                    if hr < 1 { a += 0.35 * (1 - 0.3 * hr); rp[k] = 0; lp[k] = 0 }
                    if isEffusion {
                        let v = (y - ef.cy) / ef.ry, u = effusionSide * (x - ef.cx) / ef.rx
                        let inLung = effusionSide < 0 ? rp[k] > 0 : lp[k] > 0
                        if inLung && v > 0.5 - 0.35 * u {
                            a += 0.45
                            if effusionSide < 0 { rp[k] = 0 } else { lp[k] = 0 }
                            fluidPixels += 1
                        }
                    }
                    // Posterior ribs: bands curving down laterally; brighter cortex at the band edges.
                    let ax = abs(x)
                    if ax > 0.08 && ax < 0.9 {
                        // Only the ribs nearest this height can cover it (spacing 0.165, jitter 0.015, half-width 0.03).
                        let yr = y - 0.42 * (ax - 0.1) * (ax - 0.1)
                        let k0 = Int(((yr + 0.78) * (1 / 0.165)).rounded())
                        var rk = max(0, k0 - 1)
                        while rk <= min(ribs.count - 1, k0 + 1) {
                            let d = abs(yr - ribs[rk])
                            if d < 0.03 { a += 0.1 + 0.1 * d / 0.03; break }
                            rk += 1
                        }
                        // Clavicles.
                        if ax > 0.06 && ax < 0.62 && abs(y - (-0.8 - 0.18 * (ax - 0.06))) < 0.035 { a += 0.22 }
                    }
                    ap[k] = Float(a)
                }
            }
        }
        }
        }
        // Air in the lungs lowers attenuation; soft-edged (blurred masks).
        var air = Plane(w, h)
        for k in 0..<(w * h) { air.data[k] = right.data[k] + left.data[k] }
        air.blurCoarse(sigma: 2.5 / sx)
        // The image is computed in place of the attenuation map (one full-size buffer less).
        var image = consume atten
        let norm = Float(1 - exp(-2.9))
        let (g, c, o) = (Float(site.gamma), Float(site.contrast), Float(site.offset))
        let field = SmoothField(w, h, cells: 3, rng: &rng)
        let gx = rng.uniform(-1, 1), gy = rng.uniform(-1, 1)
        let margins = (0..<4).map { _ in rng.uniform(0, 0.05) }
        // Per-column and per-row terms, computed once.
        let colIn = (0..<w).map { i -> Bool in let fi = Double(i) / Double(w); return !(fi < margins[0] || fi > 1 - margins[1]) }
        let rowIn = (0..<h).map { j -> Bool in let fj = Double(j) / Double(h); return !(fj < margins[2] || fj > 1 - margins[3]) }
        let colGrad = (0..<w).map { Float(gx * (Double($0) / Double(w) - 0.5)) }, rowGrad = (0..<h).map { Float(gy * (Double($0) / Double(h) - 0.5)) }
        let bias = Float(site.bias)
        image.data.withUnsafeMutableBufferPointer { ib in air.data.withUnsafeBufferPointer { airb in
            let (ip, airp) = (ib.baseAddress!, airb.baseAddress!)
            for j in 0..<h {
                for i in 0..<w {
                    let k = j * w + i
                    let a = max(0, ip[k] - 0.62 * airp[k])
                    let s: Float = colIn[i] && rowIn[j] ? (1 - Foundation.exp(-1.8 * a)) / norm : 0.97
                    let b = bias == 0 ? 0 : bias * (0.6 * field.value(i, j) + 0.4 * (colGrad[i] + rowGrad[j]))
                    ip[k] = transfer(s, gamma: g, contrast: c, offset: o) * (1 + b)
                }
            }
        } }
        image.blur(sigmaX: site.blur / sx, sigmaY: site.blur / sy)
        addNoise(&image.data, rowLength: w, sigma: site.noise, rician: false, seed: seed, streams: streams + [1])
        for k in 0..<(w * h) { image.data[k] = min(1, max(0, image.data[k])) }
        let lungPixels = right.data.reduce(0, +) + left.data.reduce(0, +)
        let facts: [String: String] = [
            "lung_area_fraction": String(format: "%.4f", Double(lungPixels) / Double(w * h)),
            "cardiothoracic_ratio": String(format: "%.3f", 2 * hc.rx / 1.9),
            "effusion_side": mode == "effusion" ? (effusionSide < 0 ? "right" : "left") : "",
            "fluid_fraction": String(format: "%.4f", Double(fluidPixels) / Double(w * h)),
            "rotation_deg": String(format: "%.2f", angle * 180 / .pi),
        ]
        return Output(image: image, rightLung: right, leftLung: left, facts: facts)
    }
}
