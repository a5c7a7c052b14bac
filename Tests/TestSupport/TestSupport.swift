import Foundation
import MedSelection
internal import CZlib
import MedFoundation

/// Helpers shared by the test suites: scratch folders and hand-built files (independent of the code under test).
public enum TestSupportModule {}

/// A fresh folder under the system temp dir, removed by `cleanup()`.
public struct Scratch: Sendable {
    public let path: String
    public init(_ name: String = "t") {
        path = NSTemporaryDirectory() + "medselect-\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> String { path + "/" + name }
    public func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    public func write(_ bytes: [UInt8], _ name: String) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
    /// Names of the entries in the folder.
    public var entries: [String] { (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? [] }
}

public func zlibCompress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
    var bound = compressBound(uLong(input.count))
    var out = [UInt8](repeating: 0, count: Int(bound))
    _ = out.withUnsafeMutableBufferPointer { o in
        input.withUnsafeBufferPointer { i in compress2(o.baseAddress, &bound, i.baseAddress, uLong(i.count), level) }
    }
    return Array(out.prefix(Int(bound)))
}

public func gzipCompress(_ input: [UInt8], path: String) {
    let gz = gzopen(path, "wb")
    _ = input.withUnsafeBufferPointer { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
    gzclose(gz)
}

public func crc32Of(_ bytes: [UInt8]) -> UInt32 {
    UInt32(bytes.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) })
}

/// Builds PNG files by hand (chunks, CRC, zlib) so the reader is tested against bytes it did not write.
public enum PNGBuilder {
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    public static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        return be32(UInt32(data.count)) + t + data + be32(crc32Of(t + data))
    }

    /// Packs samples (each < 2^bitDepth) into scanline bytes, MSB first, for bit depths 1, 2, 4, 8, 16.
    public static func packRow(_ samples: [Int], bitDepth: Int) -> [UInt8] {
        if bitDepth == 8 { return samples.map { UInt8($0) } }
        if bitDepth == 16 { return samples.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] } }
        var out: [UInt8] = []
        var acc = 0, bits = 0
        for s in samples {
            acc = (acc << bitDepth) | s
            bits += bitDepth
            if bits == 8 { out.append(UInt8(acc)); acc = 0; bits = 0 }
        }
        if bits > 0 { out.append(UInt8(acc << (8 - bits))) }
        return out
    }

    /// A PNG from rows of samples (`rows[y]` holds width * channels samples), optional PLTE/tRNS/pHYs, Adam7 when asked.
    public static func make(width: Int, height: Int, bitDepth: Int, colorType: Int, rows: [[Int]],
                            palette: [(UInt8, UInt8, UInt8)]? = nil, trns: [UInt8]? = nil,
                            physPerMetre: (UInt32, UInt32)? = nil, interlaced: Bool = false,
                            truncateIDAT: Bool = false, corruptCRC: Bool = false, corruptData: Bool = false,
                            storedIDAT: Bool = false, flipOneByte: Bool = false) -> [UInt8] {
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType]!
        var raw: [UInt8] = []
        if interlaced {
            let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            for (x0, y0, dx, dy) in passes {
                var y = y0
                while y < height {
                    var samples: [Int] = []
                    var x = x0
                    while x < width { samples += rows[y][(x * channels)..<((x + 1) * channels)]; x += dx }
                    if !samples.isEmpty { raw += [0] + packRow(samples, bitDepth: bitDepth) }
                    y += dy
                }
            }
        } else {
            for y in 0..<height { raw += [0] + packRow(rows[y], bitDepth: bitDepth) }
        }
        var ihdr = be32(UInt32(width)) + be32(UInt32(height))
        ihdr += [UInt8(bitDepth), UInt8(colorType), 0, 0, interlaced ? 1 : 0]
        var out: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
        out += chunk("IHDR", ihdr)
        if let p = physPerMetre { out += chunk("pHYs", be32(p.0) + be32(p.1) + [1]) }
        if let pal = palette { out += chunk("PLTE", pal.flatMap { [$0.0, $0.1, $0.2] }) }
        if let t = trns { out += chunk("tRNS", t) }
        var idat = zlibCompress(raw, level: storedIDAT ? 0 : 6)
        if flipOneByte { idat[idat.count / 2] ^= 0x04 }   // in a stored block: inflate accepts it, Adler-32 does not
        if truncateIDAT { idat = Array(idat.prefix(idat.count / 2)) }
        if corruptData { for i in 2..<(idat.count - 4) { idat[i] ^= 0x21 } }   // damage the deflate payload
        var c = chunk("IDAT", idat)
        if corruptCRC { c[c.count - 1] ^= 0xff }
        out += c
        if !truncateIDAT { out += chunk("IEND", []) }
        return out
    }
}

/// Builds NIfTI-1 files byte by byte (the layout of nifti1.h), independent of libnifti and of our writer.
public struct NIfTI1Builder {
    public var dims: [Int16] = [3, 2, 3, 4, 1, 1, 1, 1]
    public var datatype: Int16 = 4          // int16
    public var bitpix: Int16 = 16
    public var pixdim: [Float] = [1, 1, 1, 1, 1, 1, 1, 1]
    public var voxOffset: Float = 352
    public var slope: Float = 0
    public var inter: Float = 0
    public var xyztUnits: UInt8 = 2
    public var qformCode: Int16 = 0
    public var sformCode: Int16 = 0
    public var quatern: [Float] = [0, 0, 0]
    public var qoffset: [Float] = [0, 0, 0]
    public var srow: [[Float]] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    public var magic: [UInt8] = [0x6e, 0x2b, 0x31, 0]   // "n+1\0"
    public var bigEndian = false

    public init() {}

    public func header() -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 348)
        func put<T: FixedWidthInteger>(_ v: T, _ o: Int) {
            let x = bigEndian ? v.bigEndian : v.littleEndian
            withUnsafeBytes(of: x) { for (i, b) in $0.enumerated() { h[o + i] = b } }
        }
        func putF(_ v: Float, _ o: Int) { put(v.bitPattern, o) }
        put(Int32(348), 0)
        for (i, d) in dims.enumerated() { put(d, 40 + 2 * i) }
        put(datatype, 70)
        put(bitpix, 72)
        for (i, p) in pixdim.enumerated() { putF(p, 76 + 4 * i) }
        putF(voxOffset, 108)
        putF(slope, 112)
        putF(inter, 116)
        h[123] = xyztUnits
        put(qformCode, 252)
        put(sformCode, 254)
        for i in 0..<3 { putF(quatern[i], 256 + 4 * i); putF(qoffset[i], 268 + 4 * i) }
        for r in 0..<3 { for c in 0..<4 { putF(srow[r][c], 280 + 16 * r + 4 * c) } }
        for i in 0..<4 { h[344 + i] = magic[i] }
        return h
    }

    /// Header, 4 extension bytes, then the data.
    public func file(data: [UInt8]) -> [UInt8] {
        header() + [0, 0, 0, 0] + [UInt8](repeating: 0, count: max(0, Int(voxOffset) - 352)) + data
    }

    /// int16 values as bytes in the builder's byte order.
    public func int16Bytes(_ values: [Int16]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in
            let x = bigEndian ? v.bigEndian : v.littleEndian
            return withUnsafeBytes(of: x) { Array($0) }
        }
    }
}

/// The project's seeded generator under the name the tests use; `SplitMix(state:)` seeds it.
public typealias SplitMix = SplitMix64

extension SplitMix64 {
    public init(state: UInt64) { self.init(seed: state) }
}
