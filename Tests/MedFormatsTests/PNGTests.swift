import Foundation
import Testing
import TestSupport
@testable import MedFormats
@testable import MedImage

@Suite("PNG decoding of hand-built files")
struct PNGDecodeTests {
    /// A 5x3 pattern of samples below 2^depth.
    static func rows(width: Int = 5, height: Int = 3, channels: Int, depth: Int) -> [[Int]] {
        (0..<height).map { y in (0..<(width * channels)).map { x in (x * 7 + y * 13) % (1 << depth) } }
    }

    @Test("gray 1/2/4-bit scale by bit replication like Pillow's L mode", arguments: [1, 2, 4])
    func subByte(depth: Int) throws {
        let r = Self.rows(channels: 1, depth: depth)
        for interlaced in [false, true] {
            let bytes = PNGBuilder.make(width: 5, height: 3, bitDepth: depth, colorType: 0, rows: r, interlaced: interlaced)
            let arr = try PNGReader.decodeArray(bytes, path: "g.png", options: .default).0
            let scale = 255 / ((1 << depth) - 1)   // 255, 85, 17
            #expect(arr.shape == [3, 5] && arr.dtype == .uint8)
            #expect(arr.storage == r.flatMap { $0 }.map { UInt8($0 * scale) })
        }
    }

    @Test("8- and 16-bit gray, gray+alpha, RGB, RGBA keep exact samples, interlaced or not", arguments: [
        (0, 8), (0, 16), (4, 8), (4, 16), (2, 8), (2, 16), (6, 8), (6, 16),
    ])
    func exact(colorType: Int, depth: Int) throws {
        let ch = [0: 1, 4: 2, 2: 3, 6: 4][colorType]!
        // 9x9 so every Adam7 pass has pixels.
        let r = Self.rows(width: 9, height: 9, channels: ch, depth: depth == 16 ? 16 : 8).map { $0.map { depth == 16 ? $0 * 251 % 65536 : $0 } }
        for interlaced in [false, true] {
            let bytes = PNGBuilder.make(width: 9, height: 9, bitDepth: depth, colorType: colorType, rows: r, interlaced: interlaced)
            let img = try PNGReader.decode(bytes, path: "x.png")
            #expect(img.shape == ImageShape(9, 9, 1, ch))
            for y in 0..<9 { for x in 0..<9 { for c in 0..<ch { #expect(img[x, y, 0, c] == Float(r[y][x * ch + c])) } } }
            let arr = try PNGReader.decodeArray(bytes, path: "x.png", options: .default).0
            #expect(arr.shape == (ch == 1 ? [9, 9] : [9, 9, ch]))
            #expect(arr.dtype == (depth == 16 ? .uint16 : .uint8))
            #expect(arr.doubles() == r.flatMap { $0 }.map(Double.init))
        }
    }

    @Test("palettes: RGB, RGBA with tRNS, gray when every entry is gray")
    func palettes() throws {
        let idx = [[0, 1, 2, 1, 0], [2, 2, 1, 0, 1], [1, 0, 0, 2, 2]]
        let colour: [(UInt8, UInt8, UInt8)] = [(10, 20, 30), (200, 100, 50), (0, 255, 0)]
        let rgb = try PNGReader.decodeArray(PNGBuilder.make(width: 5, height: 3, bitDepth: 2, colorType: 3, rows: idx, palette: colour), path: "p.png", options: .default).0
        #expect(rgb.shape == [3, 5, 3])
        #expect(rgb.storage == idx.flatMap { $0 }.flatMap { [colour[$0].0, colour[$0].1, colour[$0].2] })
        let rgba = try PNGReader.decodeArray(PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 3, rows: idx, palette: colour, trns: [0, 128]), path: "p.png", options: .default).0
        #expect(rgba.shape == [3, 5, 4])
        #expect(rgba.storage == idx.flatMap { $0 }.flatMap { [colour[$0].0, colour[$0].1, colour[$0].2, [0, 128, 255][$0]] })
        let grayPal: [(UInt8, UInt8, UInt8)] = [(0, 0, 0), (77, 77, 77), (255, 255, 255)]
        let gray = try PNGReader.decodeArray(PNGBuilder.make(width: 5, height: 3, bitDepth: 4, colorType: 3, rows: idx, palette: grayPal, interlaced: true), path: "p.png", options: .default).0
        #expect(gray.shape == [3, 5])
        #expect(gray.storage == idx.flatMap { $0 }.map { [0, 77, 255][$0] })
    }

    @Test("pHYs in metres gives spacing in mm; none means unknown")
    func spacing() throws {
        let r = Self.rows(channels: 1, depth: 8)
        let withPhys = try PNGReader.decode(PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 0, rows: r, physPerMetre: (5000, 4000)), path: "s.png")
        #expect(withPhys.spacing[0] == 0.2 && withPhys.spacing[1] == 0.25 && withPhys.info.spacingIsKnown)
        let without = try PNGReader.decode(PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 0, rows: r), path: "s.png")
        #expect(without.spacing[0] == 1 && !without.info.spacingIsKnown)
    }
}

@Suite("PNG bad input and writer")
struct PNGBadInputTests {
    let rows = (0..<3).map { y in (0..<5).map { ($0 + y) * 9 } }

    @Test func truncated() {
        let s = Scratch("png"); defer { s.cleanup() }
        let p = s.write(PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 0, rows: rows, truncateIDAT: true), "t.png")
        expectFormatError(p, { if case .truncated = $0 { return true }; if case .corrupt = $0 { return true }; return false }) {
            _ = try PNGReader.read(p)
        }
        let full = PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 0, rows: rows)
        let q = s.write(Array(full.prefix(20)), "h.png")
        expectFormatError(q, { if case .truncated = $0 { return true }; return false }) { _ = try PNGReader.read(q) }
    }

    @Test("damaged pixel data is an error; a damaged IDAT CRC alone is tolerated (as Pillow) and the pixels are exact")
    func damaged() throws {
        let s = Scratch("png"); defer { s.cleanup() }
        let big = (0..<40).map { y in (0..<40).map { ($0 * 7 + y * 3) % 256 } }
        let p = s.write(PNGBuilder.make(width: 40, height: 40, bitDepth: 8, colorType: 0, rows: big, corruptData: true), "d.png")
        expectFormatError(p, { if case .corrupt = $0 { return true }; if case .truncated = $0 { return true }; return false }) {
            _ = try PNGReader.read(p)
        }
        let one = s.write(PNGBuilder.make(width: 40, height: 40, bitDepth: 8, colorType: 0, rows: big, storedIDAT: true, flipOneByte: true), "one.png")
        expectFormatError(one, { if case .corrupt = $0 { return true }; return false }) { _ = try PNGReader.read(one) }
        let q = s.write(PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 0, rows: rows, corruptCRC: true), "c.png")
        #expect(try PNGReader.read(q).voxels == rows.flatMap { $0 }.map(Float.init))
    }

    @Test("a bad CRC in IHDR or an ancillary chunk before the pixels is refused with the chunk's name (as Pillow); IDAT's is left to zlib, IEND's is not refused (as Pillow and OpenCV)",
          arguments: ["IHDR", "tEXt", "IEND", "all"])
    func chunkCRC(chunk: String) throws {
        let s = Scratch("png"); defer { s.cleanup() }
        let good = PNGBuilder.make(width: 5, height: 3, bitDepth: 8, colorType: 0, rows: rows)
        // Insert a tEXt chunk after IHDR (8 + 25 bytes), then damage the CRC of the chosen chunk(s) by one bit.
        var bytes = Array(good[0..<33]) + PNGBuilder.chunk("tEXt", Array("Comment\u{0}phantom".utf8)) + Array(good[33...])
        var pos = 8, damaged: [String] = []
        while pos + 12 <= bytes.count {
            let length = Int(bytes[pos]) << 24 | Int(bytes[pos + 1]) << 16 | Int(bytes[pos + 2]) << 8 | Int(bytes[pos + 3])
            let type = String(decoding: bytes[(pos + 4)..<(pos + 8)], as: UTF8.self)
            if type == chunk || chunk == "all" { bytes[pos + 8 + length + 3] ^= 1; damaged.append(type) }
            pos += 12 + length
        }
        // "all" is the Go project's invalid-crc32.png: IHDR, tEXt, IDAT and IEND all damaged.
        #expect(chunk == "all" ? damaged == ["IHDR", "tEXt", "IDAT", "IEND"] : damaged == [chunk])
        let p = s.write(bytes, "bad.png")
        if chunk == "IEND" {
            #expect(try PNGReader.read(p).voxels == rows.flatMap { $0 }.map(Float.init))
            return
        }
        let first = chunk == "all" ? "IHDR" : chunk
        expectFormatError(p, { if case .corrupt(_, let reason) = $0 { return reason.contains("PNG chunk \(first) has a bad CRC") }; return false }) {
            _ = try PNGReader.read(p)
        }
        expectFormatError(p, { if case .corrupt = $0 { return true }; return false }) { _ = try ImageIO.read(p) }
        if chunk == "IHDR" || chunk == "all" {
            expectFormatError(p, { if case .corrupt = $0 { return true }; return false }) { _ = try PNGReader.readHeader(p) }
        }
    }

    @Test("IHDR claiming 60000 x 60000 RGBA 16-bit is refused before allocating")
    func huge() {
        var bytes = PNGBuilder.make(width: 5, height: 3, bitDepth: 16, colorType: 6, rows: (0..<3).map { _ in [Int](repeating: 1, count: 20) })
        // Patch IHDR width/height and fix its CRC.
        let be: (UInt32) -> [UInt8] = { [UInt8($0 >> 24), UInt8(($0 >> 16) & 0xff), UInt8(($0 >> 8) & 0xff), UInt8($0 & 0xff)] }
        bytes.replaceSubrange(16..<24, with: be(60000) + be(60000))
        bytes.replaceSubrange(29..<33, with: be(crc32Of(Array(bytes[12..<29]))))
        let s = Scratch("png"); defer { s.cleanup() }
        let p = s.write(bytes, "huge.png")
        expectFormatError(p, { if case .tooLarge = $0 { return true }; return false }) { _ = try PNGReader.read(p) }
    }

    @Test func notAPNG() {
        let s = Scratch("png"); defer { s.cleanup() }
        let p = s.write(Array("hello, this is text".utf8), "x.png")
        expectFormatError(p, { if case .unsupported = $0 { return true }; return false }) { _ = try PNGReader.read(p) }
        expectFormatError(p, { if case .unsupported = $0 { return true }; return false }) { _ = try ImageIO.read(p) }
    }

    @Test("writer round trips 8/16-bit gray, RGB and label maps with spacing")
    func writer() throws {
        let s = Scratch("png"); defer { s.cleanup() }
        var gray16 = MedicalImage(shape: ImageShape(7, 4), voxels: (0..<28).map { Float($0 * 2000) }, affine: .diagonal(spacing: [0.175, 0.2, 1]))
        gray16.info.storedType = .uint16
        try PNGWriter.write(gray16, to: s.file("g16.png"))
        let back = try PNGReader.read(s.file("g16.png"))
        #expect(back.voxels == gray16.voxels && back.info.storedType == .uint16)
        #expect(abs(back.spacing[0] - 0.175) < 1e-4 && abs(back.spacing[1] - 0.2) < 1e-4)
        var rgb = MedicalImage(shape: ImageShape(3, 2, 1, 3), voxels: (0..<18).map { Float($0 * 14) })
        rgb.info.components = .color
        try PNGWriter.write(rgb, to: s.file("rgb.png"))
        #expect(try PNGReader.read(s.file("rgb.png")).voxels == rgb.voxels)
        let labels = MedicalImage(shape: ImageShape(3, 2), voxels: [0, 1, 2, 2, 1, 0], kind: .labelMap)
        try PNGWriter.write(labels, to: s.file("lab.png"))
        #expect(try PNGReader.read(s.file("lab.png")).voxels == labels.voxels)
        // Out-of-range values and 3-D images are refused; nothing is left behind.
        expectFormatError(s.file("neg.png"), { if case .cannotRepresent = $0 { return true }; return false }) {
            try PNGWriter.write(MedicalImage(shape: ImageShape(2, 1), voxels: [-1, 3]), to: s.file("neg.png"))
        }
        expectFormatError(s.file("vol.png"), { if case .cannotRepresent = $0 { return true }; return false }) {
            try PNGWriter.write(MedicalImage(shape: ImageShape(2, 2, 2)), to: s.file("vol.png"))
        }
        #expect(Set(s.entries) == ["g16.png", "rgb.png", "lab.png"])
    }
}

@Suite("PNG raw-pixel writer")
struct PNGRawWriterTests {
    @Test("pre-quantised pixels round-trip in the fast mode and the default mode, with their spacing",
          arguments: [(16, 1), (16, 6), (8, 1), (8, 6)])
    func rawRoundTrip(depth: Int, level: Int) throws {
        let scratch = Scratch("png-raw")
        defer { scratch.cleanup() }
        let (w, h, ch) = (37, 23, depth == 8 ? 3 : 1)
        var g = SplitMix(state: UInt64(depth * 10 + level))
        let samples = (0..<(w * h * ch)).map { _ in Int.random(in: 0..<(depth == 16 ? 65536 : 256), using: &g) }
        var bytes: [UInt8] = []
        for v in samples {
            if depth == 16 { withUnsafeBytes(of: UInt16(v)) { bytes += $0 } } else { bytes.append(UInt8(v)) }
        }
        let path = scratch.file("a.png")
        try PNGWriter.write(interleaved: bytes, width: w, height: h, channels: ch, bitDepth: depth, spacing: [0.25, 0.5],
                            to: path, compressionLevel: level)
        let image = try PNGReader.read(path)
        #expect(image.shape.x == w && image.shape.y == h && image.shape.t == ch)
        // Planar storage: channel c of pixel i is voxels[c * w * h + i].
        for i in 0..<(w * h) { for c in 0..<ch { #expect(Int(image.voxels[c * w * h + i]) == samples[i * ch + c]) } }
        #expect(abs(image.spacing[0] - 0.25) < 1e-3 && abs(image.spacing[1] - 0.5) < 1e-3)
        #expect(throws: FormatError.self) {
            try PNGWriter.encode(interleaved: Array(bytes.dropLast()), width: w, height: h, channels: ch, bitDepth: depth, spacing: nil)
        }
    }
}
