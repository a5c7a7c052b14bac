import Foundation

/// One synthetic axial T2-weighted prostate MRI volume and its gland segmentation.
///
/// Anatomy in millimetres around the gland (x left-right, y posterior-anterior, z inferior-superior): pelvic fat,
/// obturator muscles, the bladder (bright fluid) above and in front, the rectum (dark lumen, wall) behind, and the
/// prostate: an ellipsoid with random low-order shape harmonics, a brighter peripheral zone behind a darker,
/// heterogeneous central gland. Signal in [0, 1] goes through the site's scanner model; the bias field is smooth, or
/// falls off from the rectum for an endorectal coil; the noise is Rician (magnitude images).
/// Modes: `enlarged` (gland semi-axes x1.35-1.5, as in benign hyperplasia), `off_centre` (gland shifted 8-12 mm
/// laterally and 4-8 mm antero-posteriorly).
struct ProstatePhantom {
    struct Output {
        var volume: [Float]       // nx * ny * nz, [0, 1] after the scanner model
        var labels: [Float]       // 0 / 1
        var facts: [String: String]
    }

    static func render(site: ResolvedSite, mode: String, seed: UInt64, streams: [Int]) -> Output {
        var rng = PhantomRandom(seed: seed, streams: streams)
        let (nx, ny, nz) = (site.size[0], site.size[1], site.size[2])
        let (sx, sy, sz) = (site.spacing[0], site.spacing[1], site.spacing[2])
        let angle = rng.uniform(-site.rotation, site.rotation) * .pi / 180
        let (tx, ty, tz) = (rng.uniform(-site.translation, site.translation), rng.uniform(-site.translation, site.translation),
                            rng.uniform(-0.3, 0.3) * site.translation)
        let (ca, sa) = (cos(angle), sin(angle))
        let grow = mode == "enlarged" ? rng.uniform(1.35, 1.5) : rng.uniform(0.85, 1.15)
        let semi = (x: 22 * grow * rng.uniform(0.92, 1.08), y: 16 * grow * rng.uniform(0.92, 1.08), z: 19 * grow * rng.uniform(0.92, 1.08))
        let shift = mode == "off_centre"
            ? ((rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(8, 12), (rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(4, 8))
            : (rng.uniform(-2, 2), rng.uniform(-2, 2))
        let harm = (0..<4).map { _ in (rng.normal() * 0.06, rng.uniform(0, 2 * .pi)) }
        let bladder = (y: 22.0 + rng.uniform(-3, 3), z: semi.z + 16 + rng.uniform(-4, 4), r: rng.uniform(28, 40))
        let rectumY = -(semi.y + 14 + rng.uniform(-2, 2))
        var volume = [Float](repeating: 0, count: nx * ny * nz)
        var labels = [Float](repeating: 0, count: nx * ny * nz)
        var texture = Plane.smoothField(nx, ny, cells: 6, rng: &rng)
        texture.blur(sigmaX: 1, sigmaY: 1)
        let biasField = Plane.smoothField(nx, ny, cells: 2, rng: &rng)
        let slab = nz
        var glandVoxels = 0
        volume.withUnsafeMutableBufferPointer { vb in
        labels.withUnsafeMutableBufferPointer { lb in
            nonisolated(unsafe) let (vp, lp) = (vb.baseAddress!, lb.baseAddress!)
            let tex = texture.data, bf = biasField.data
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: slab)
            counts.initialize(repeating: 0, count: slab)
            defer { counts.deallocate() }
            nonisolated(unsafe) let cp = counts
            phantomParallel(nz) { k in
                let Z = (Double(k) + 0.5 - Double(nz) / 2) * sz - tz
                for j in 0..<ny {
                    for i in 0..<nx {
                        let X0 = (Double(i) + 0.5 - Double(nx) / 2) * sx - tx
                        let Y0 = -((Double(j) + 0.5 - Double(ny) / 2) * sy) - ty      // j runs anterior -> posterior
                        let x = ca * X0 + sa * Y0, y = -sa * X0 + ca * Y0, z = Z
                        let idx = (k * ny + j) * nx + i
                        var s = 0.0
                        let body = (x / 185) * (x / 185) + ((y + 10) / 125) * ((y + 10) / 125)
                        if body < 1 {
                            s = 0.62                                              // fat
                            let ox = (abs(x) - 58) / 20, oy = (y + 4) / 38
                            if ox * ox + oy * oy < 1 { s = 0.22 }                 // obturator muscles
                            let bx = x / bladder.r, byy = (y - bladder.y) / (bladder.r * 0.8), bz = (z - bladder.z) / (bladder.r * 0.7)
                            if bx * bx + byy * byy + bz * bz < 1 { s = 0.95 }     // bladder
                            let rx = x / 16, ry = (y - rectumY) / 13
                            let rr = rx * rx + ry * ry
                            if rr < 1 { s = rr < 0.35 ? 0.04 : 0.2 }              // rectum: lumen and wall
                        } else { s = 0.01 }
                        // Gland: ellipsoid with angular harmonics.
                        let gx = (x - shift.0) / semi.x, gy = (y - shift.1) / semi.y, gz = z / semi.z
                        let th = atan2(gy, gx), ph = gz
                        var rad = 1.0
                        for (n, hm) in harm.enumerated() { rad += hm.0 * cos(Double(n + 2) * th + hm.1 + ph) }
                        let e = (gx * gx + gy * gy + gz * gz).squareRoot() / rad
                        if e < 1 {
                            let peripheral = gy < -0.25 && e > 0.45
                            s = peripheral ? 0.58 : 0.36 + 0.08 * Double(tex[j * nx + i])
                            lp[idx] = 1
                            cp[k] += 1
                        } else if e < 1.12 { s = s * 0.5 + 0.15 }               // capsule
                        vp[idx] = Float(s)
                    }
                }
                // Scanner: transfer, bias (smooth, or an endorectal coil's falloff from the rectum).
                for j in 0..<ny {
                    for i in 0..<nx {
                        let idx = (k * ny + j) * nx + i
                        var v = transfer(vp[idx], gamma: Float(site.gamma), contrast: Float(site.contrast), offset: Float(site.offset))
                        if site.endorectalCoil {
                            let X0 = (Double(i) + 0.5 - Double(nx) / 2) * sx - tx, Y0 = -((Double(j) + 0.5 - Double(ny) / 2) * sy) - ty
                            let dr = ((X0 * X0) + (Y0 - rectumY) * (Y0 - rectumY)).squareRoot()
                            v *= Float(1 + site.bias * 1.5 * exp(-dr / 25)) / Float(1 + site.bias * 0.5)
                        } else {
                            v *= 1 + Float(site.bias) * 0.4 * bf[j * nx + i]
                        }
                        vp[idx] = v
                    }
                }
            }
            for k in 0..<slab { glandVoxels += counts[k] }
        }
        }
        // Blur in-plane per slice (the through-plane resolution is the slice thickness already), then noise.
        for k in 0..<nz {
            var plane = Plane(nx, ny)
            plane.data = Array(volume[(k * nx * ny)..<((k + 1) * nx * ny)])
            plane.blur(sigmaX: site.blur / sx, sigmaY: site.blur / sy)
            volume.replaceSubrange((k * nx * ny)..<((k + 1) * nx * ny), with: plane.data)
        }
        addNoise(&volume, rowLength: nx, sigma: site.noise, rician: site.noiseType == "rician", seed: seed, streams: streams + [1])
        for i in 0..<volume.count { volume[i] = min(1.5, max(0, volume[i])) }
        let facts: [String: String] = [
            "gland_volume_ml": String(format: "%.2f", Double(glandVoxels) * sx * sy * sz / 1000),
            "gland_offset_mm": String(format: "%.1f", (shift.0 * shift.0 + shift.1 * shift.1).squareRoot()),
            "rotation_deg": String(format: "%.2f", angle * 180 / .pi),
        ]
        return Output(volume: volume, labels: labels, facts: facts)
    }
}
