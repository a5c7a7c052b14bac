import Foundation

/// One synthetic colour fundus photograph and its optic disc / cup label map.
///
/// Normalised frame: the field of view is a circle of radius 0.92 around the image centre. Orange-red background
/// with vignetting and an illumination field, a dark macula, the optic disc (yellowish, slightly elliptic) with a
/// paler cup, and a vessel tree growing from the disc (four arcades around the macula plus nasal branches).
/// Labels follow RIGA+'s processed masks: 0 background, 255 optic disc outside the cup, 128 cup.
/// Modes: `glaucoma` (cup-to-disc ratio 0.68-0.85 instead of 0.3-0.5), `small_disc` (disc radius about two thirds).
struct FundusPhantom {
    struct Output {
        var rgb: [Plane]          // three [0, 1] channels after the scanner model
        var labels: Plane         // 0 / 128 / 255
        var facts: [String: String]
    }

    static func render(site: ResolvedSite, mode: String, seed: UInt64, streams: [Int]) -> Output {
        var rng = PhantomRandom(seed: seed, streams: streams)
        let (w, h) = (site.size[0], site.size[1])
        let half = Double(min(w, h)) / 2
        let angle = rng.uniform(-site.rotation, site.rotation) * .pi / 180
        let (tx, ty) = (rng.uniform(-1, 1) * site.translation * 0.1, rng.uniform(-1, 1) * site.translation * 0.1)
        let (ca, sa) = (cos(angle), sin(angle))
        let eye = rng.uniform() < 0.5 ? -1.0 : 1.0          // which side the disc is on
        let discR = (mode == "small_disc" ? rng.uniform(0.075, 0.09) : rng.uniform(0.115, 0.14))
        let elong = rng.uniform(1.0, 1.12)
        let cdr = mode == "glaucoma" ? rng.uniform(0.68, 0.85) : rng.uniform(0.3, 0.5)
        let disc = (x: eye * rng.uniform(0.34, 0.42), y: rng.uniform(-0.06, 0.06))
        let cup = (x: disc.x - eye * discR * rng.uniform(0.0, 0.15) * (1 - cdr), y: disc.y)
        let macula = (x: disc.x - eye * rng.uniform(0.68, 0.76), y: disc.y + rng.uniform(0.0, 0.06))
        let pigment = rng.uniform(0.85, 1.1)
        // Vessels: random-walk polylines stamped as discs into a darkness map (in normalised units).
        var segments: [(x: Double, y: Double, r: Double)] = []
        func grow(_ x0: Double, _ y0: Double, _ dir0: Double, _ width: Double, _ steps: Int, _ curl: Double, _ depth: Int) {
            var (x, y, dir, r) = (x0, y0, dir0, width)
            for s in 0..<steps {
                dir += curl + rng.normal() * 0.12
                x += cos(dir) * 0.02; y += sin(dir) * 0.02
                r *= 0.985
                segments.append((x, y, r))
                if x * x + y * y > 0.95 { break }
                if depth < 2 && s > 6 && rng.uniform() < 0.07 {
                    grow(x, y, dir + (rng.uniform() < 0.5 ? -0.7 : 0.7), r * 0.7, steps / 2, curl * 0.5, depth + 1)
                }
            }
        }
        let toward = eye < 0 ? 0.0 : Double.pi                   // the temporal direction (towards the macula)
        for vert in [-1.0, 1.0] {
            for thick in [0.013, 0.010] {
                let start = toward + vert * rng.uniform(0.9, 1.3)
                grow(disc.x, disc.y, start, thick, 45, -vert * (eye < 0 ? -1 : 1) * 0.045 * (thick > 0.011 ? 1 : 0.8), 0)
            }
        }
        for _ in 0..<4 { grow(disc.x, disc.y, toward + .pi + rng.uniform(-1.2, 1.2), 0.007, 22, rng.normal() * 0.03, 1) }
        var vessel = Plane(w, h)
        for seg in segments {
            let (px, py) = (ca * seg.x - sa * seg.y + tx, sa * seg.x + ca * seg.y + ty)
            let cx = px * half + Double(w) / 2, cy = py * half + Double(h) / 2, r = max(0.7, seg.r * half)
            let i0 = max(0, Int(cx - r)), i1 = min(w - 1, Int(cx + r) + 1), j0 = max(0, Int(cy - r)), j1 = min(h - 1, Int(cy + r) + 1)
            guard i0 <= i1, j0 <= j1 else { continue }
            for j in j0...j1 { for i in i0...i1 {
                let dx = Double(i) + 0.5 - cx, dy = Double(j) + 0.5 - cy
                let d = (dx * dx + dy * dy).squareRoot()
                if d < r { vessel.data[j * w + i] = max(vessel.data[j * w + i], Float(min(1, (r - d) / 0.8)) * Float(0.55 + 0.45 * min(1, seg.r / 0.012))) }
            } }
        }
        var rgb = [Plane(w, h), Plane(w, h), Plane(w, h)]
        var labels = Plane(w, h)
        let field = Plane.smoothField(w, h, cells: 3, rng: &rng)
        let gains = site.colorBalance
        let (g, c, o) = (Float(site.gamma), Float(site.contrast), Float(site.offset))
        var discPixels = 0, cupPixels = 0
        for j in 0..<h {
            for i in 0..<w {
                let k = j * w + i
                let X = (Double(i) + 0.5 - Double(w) / 2) / half - tx, Y = (Double(j) + 0.5 - Double(h) / 2) / half - ty
                let x = ca * X + sa * Y, y = -sa * X + ca * Y
                let rr = x * x + y * y
                guard rr < 0.92 * 0.92 else { continue }
                var col = [0.78 * pigment, 0.36 * pigment, 0.15 * pigment]
                let illum = (1 - 0.45 * rr / 0.85) * (1 + site.bias * 0.5 * Double(field.data[k]))
                let dm = (x - macula.x) * (x - macula.x) + (y - macula.y) * (y - macula.y)
                let mac = 1 - 0.35 * exp(-dm / (2 * 0.09 * 0.09))
                let dx = (x - disc.x) / discR, dy = (y - disc.y) / (discR * elong)
                let dd = (dx * dx + dy * dy).squareRoot()
                let cxn = (x - cup.x) / (discR * cdr), cyn = (y - cup.y) / (discR * cdr * elong)
                let dc = (cxn * cxn + cyn * cyn).squareRoot()
                let discW = min(1, max(0, (1.08 - dd) / 0.16))
                let cupW = min(1, max(0, (1.1 - dc) / 0.3))
                for ch in 0..<3 {
                    var v = col[ch] * mac
                    v += ([0.98, 0.8, 0.52][ch] - v) * discW
                    v += ([1.0, 0.95, 0.82][ch] - v) * cupW * discW
                    col[ch] = v
                }
                let vs = Double(vessel.data[k]) * (1 - 0.4 * cupW)
                for ch in 0..<3 {
                    let v = (col[ch] + ([0.42, 0.08, 0.04][ch] - col[ch]) * vs) * illum
                    rgb[ch].data[k] = transfer(Float(v), gamma: g, contrast: c, offset: o, gain: Float(gains[ch]))
                }
                if dd < 1 {
                    if dc < 1 { labels.data[k] = 128; cupPixels += 1 } else { labels.data[k] = 255 }
                    discPixels += 1
                }
            }
        }
        for ch in 0..<3 {
            rgb[ch].blur(sigmaX: site.blur / site.spacing[0], sigmaY: site.blur / site.spacing[1])
            addNoise(&rgb[ch].data, rowLength: w, sigma: site.noise, rician: false, seed: seed, streams: streams + [10 + ch])
        }
        // Outside the field of view stays black (after blur and noise, as a camera mask would).
        for j in 0..<h { for i in 0..<w {
            let X = (Double(i) + 0.5 - Double(w) / 2) / half - tx, Y = (Double(j) + 0.5 - Double(h) / 2) / half - ty
            let k = j * w + i
            for ch in 0..<3 { rgb[ch].data[k] = X * X + Y * Y < 0.92 * 0.92 ? min(1, max(0, rgb[ch].data[k])) : 0 }
        } }
        let facts: [String: String] = [
            "cup_to_disc_ratio": String(format: "%.3f", cdr),
            "disc_radius_mm": String(format: "%.3f", discR * half * site.spacing[0]),
            "disc_area_fraction": String(format: "%.4f", Double(discPixels) / Double(w * h)),
            "cup_area_fraction": String(format: "%.4f", Double(cupPixels) / Double(w * h)),
            "eye": eye < 0 ? "right_disc_left" : "left_disc_right",
        ]
        return Output(rgb: rgb, labels: labels, facts: facts)
    }
}
