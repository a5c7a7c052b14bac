import Foundation
import MedImage
internal import CPNG
internal import CZlib

/// What a PNG header says.
public struct PNGHeader: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// As stored: 1, 2, 4, 8 or 16.
    public var bitDepth: Int
    /// As stored: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
    public var colorType: Int
    public var interlaced: Bool
    /// Pixel spacing in mm from a pHYs chunk in metres, else nil.
    public var spacing: (x: Double, y: Double)?
    /// Channels and bit depth of the decoded array (see the `.npy` contract in ``MedFormatsModule``).
    public var channels: Int
    public var outputBitDepth: Int

    public static func == (a: PNGHeader, b: PNGHeader) -> Bool {
        a.width == b.width && a.height == b.height && a.bitDepth == b.bitDepth && a.colorType == b.colorType
            && a.interlaced == b.interlaced && a.spacing?.x == b.spacing?.x && a.spacing?.y == b.spacing?.y
            && a.channels == b.channels && a.outputBitDepth == b.outputBitDepth
    }
}

/// Reads PNG through libpng's low-level API: exact samples (no gamma), 16-bit kept, Adam7 handled.
///
/// Decoded layout (Pillow's `numpy.asarray(Image.open(p))`, with the documented differences):
/// - gray 1/2/4-bit scaled to 8 bits by bit replication, as Pillow's `L` mode (1-bit: 0/255);
/// - palette expanded to RGB, to RGBA when it has tRNS, or to gray when every entry is gray and there is no tRNS;
/// - gray+alpha keeps 2 channels; 16-bit gray and 16-bit colour keep 16 bits (OpenCV's `IMREAD_UNCHANGED`, RGB order);
/// - tRNS on gray/RGB images adds no channel (Pillow keeps it as metadata).
///
/// Geometry: i runs along a row, j down the rows; spacing from pHYs in metres, else 1 mm marked unknown; the affine
/// is diagonal (natural images carry no anatomical orientation).
public enum PNGReader {
    public static func readHeader(_ path: String, options: ReadOptions = .default) throws -> PNGHeader {
        // The header lives in the first chunks; 64 KiB covers IHDR, PLTE, tRNS and pHYs in practice.
        let bytes = try FileIO.readPrefix(path, count: 1 << 16)
        return try bytes.withUnsafeBufferPointer { buf in
            try withDecoder(buf, path: path, hostOrder: true) { _, info in header(info) }
        }
    }

    public static func read(_ path: String, options: ReadOptions = .default) throws -> MedicalImage {
        let bytes = try FileIO.readAll(path)
        return try decode(bytes, path: path, options: options)
    }

    /// Decodes a PNG held in memory (`path` only names it in errors).
    public static func decode(_ bytes: [UInt8], path: String, options: ReadOptions = .default) throws -> MedicalImage {
        // 16-bit samples stay big-endian here: the byte swap is fused into the Float conversion.
        let (array, h) = try decodeArray(bytes, path: path, options: options, hostOrder: false)
        return image(from: array, header: h, bigEndian16: true)
    }

    /// The decoded samples in Pillow's array layout: shape (height, width[, channels]), C order, uint8 or uint16.
    public static func readArray(_ path: String, options: ReadOptions = .default) throws -> NDArray {
        try decodeArray(try FileIO.readAll(path), path: path, options: options).0
    }

    static func header(_ info: mspng_info) -> PNGHeader {
        var spacing: (Double, Double)? = nil
        if info.has_phys != 0 && info.phys_unit == 1 && info.phys_x > 0 && info.phys_y > 0 {
            spacing = (1000.0 / Double(info.phys_x), 1000.0 / Double(info.phys_y))
        }
        var channels = Int(info.out_channels)
        if info.out_is_index != 0 {
            channels = paletteChannels(info)
        }
        return PNGHeader(width: Int(info.width), height: Int(info.height), bitDepth: Int(info.bit_depth),
                         colorType: Int(info.color_type), interlaced: info.interlaced != 0, spacing: spacing,
                         channels: channels, outputBitDepth: Int(info.out_bit_depth))
    }

    static func paletteChannels(_ info: mspng_info) -> Int {
        if info.trans_size > 0 { return 4 }
        let n = Int(info.palette_size)
        let allGray = withUnsafeBytes(of: info.palette) { (p: UnsafeRawBufferPointer) -> Bool in
            for i in 0..<n {
                let r: UInt8 = p[3 * i], g: UInt8 = p[3 * i + 1], b: UInt8 = p[3 * i + 2]
                if r != g || r != b { return false }
            }
            return true
        }
        return allGray ? 1 : 3
    }

    /// Checks the CRC of every chunk before the pixel data (IHDR, PLTE, tRNS, pHYs, text, ...), as Pillow does: a
    /// flipped bit in IHDR could change the width, depth or colour type unnoticed. IDAT's CRC is left to the zlib
    /// stream's Adler-32 over the decompressed data, which libpng checks (damaged pixel data is an error either way),
    /// as Pillow leaves it; so the bulk of the file is not checksummed twice. Chunks after the pixel data (IEND, late
    /// text) are not checked: neither Pillow nor OpenCV refuses a file for them, and they carry no pixels. Chunks cut
    /// off by the end of `buf` (a header read of the first bytes, or a truncated file, which libpng reports) are not
    /// checked.
    static func verifyChunkCRCs(_ buf: UnsafeBufferPointer<UInt8>, path: String) throws {
        guard buf.count >= 8, let base = buf.baseAddress else { return }
        func be32(_ at: Int) -> UInt32 { (UInt32(base[at]) << 24) | (UInt32(base[at + 1]) << 16) | (UInt32(base[at + 2]) << 8) | UInt32(base[at + 3]) }
        var pos = 8
        while pos + 12 <= buf.count {
            let length = Int(be32(pos))
            guard length <= 0x7fff_ffff else { throw FormatError.corrupt(path: path, reason: "PNG chunk at byte \(pos) claims \(length) bytes") }
            guard pos + 12 + length <= buf.count else { return }
            let type = String(decoding: UnsafeBufferPointer(start: base + pos + 4, count: 4), as: UTF8.self)
            if type == "IDAT" { return }
            let computed = UInt32(crc32(0, base + pos + 4, uInt(4 + length)))
            let stored = be32(pos + 8 + length)
            if computed != stored {
                throw FormatError.corrupt(path: path, reason: String(format: "PNG chunk %@ has a bad CRC (stored %08x, computed %08x): the file is damaged",
                                                                     type, stored, computed))
            }
            pos += 12 + length
        }
    }

    static func withDecoder<T>(_ buf: UnsafeBufferPointer<UInt8>, path: String, hostOrder: Bool,
                               _ body: (OpaquePointer, mspng_info) throws -> T) throws -> T {
        try verifyChunkCRCs(buf, path: path)
        var info = mspng_info()
        var message = [CChar](repeating: 0, count: 256)
        guard let dec = mspng_open(buf.baseAddress, buf.count, hostOrder ? 1 : 0, &info, &message, message.count) else {
            throw pngError(path, message)
        }
        defer { mspng_close(dec) }
        return try body(dec, info)
    }

    static func pngError(_ path: String, _ message: [CChar]) -> FormatError {
        let text = cString(message)
        if text.contains("signature") { return .unsupported(path: path, reason: text) }
        if text.contains("truncated") || text.contains("Not enough") || text.contains("Read Error") {
            return .truncated(path: path, reason: "PNG data ends early (\(text))")
        }
        if text.contains("CRC") || text.contains("zlib") || text.contains("stream") || text.contains("IDAT")
            || text.contains("invalid") || text.contains("bad") || text.contains("Invalid") {
            return .corrupt(path: path, reason: "PNG data is damaged (\(text))")
        }
        return .invalidHeader(path: path, reason: text.isEmpty ? "libpng rejected the file" : text)
    }

    /// Decodes to the interleaved array; with `hostOrder` false, 16-bit samples keep the file's big-endian order
    /// (only for callers that swap while converting).
    static func decodeArray(_ bytes: [UInt8], path: String, options: ReadOptions, hostOrder: Bool = true) throws -> (NDArray, PNGHeader) {
        try bytes.withUnsafeBufferPointer { buf in
            try withDecoder(buf, path: path, hostOrder: hostOrder) { dec, info in
                let h = header(info)
                let w = h.width, ht = h.height
                let stored = Int(info.out_channels)
                let bps = Int(info.out_bit_depth) / 8
                try options.check(elements: Int64(w) * Int64(ht) * Int64(max(stored, h.channels)),
                                  bytesPerElement: bps, path: path)
                let rowBytes = w * stored * bps
                var pixels = [UInt8](unsafeUninitializedCapacity: rowBytes * ht) { _, n in n = rowBytes * ht }
                var message = [CChar](repeating: 0, count: 256)
                let rc = pixels.withUnsafeMutableBufferPointer { mspng_decode(dec, $0.baseAddress, rowBytes, &message, message.count) }
                if rc != 0 { throw pngError(path, message) }
                let dtype: VoxelType = bps == 2 ? .uint16 : .uint8
                if info.out_is_index != 0 {
                    pixels = expandPalette(pixels, info: info, channels: h.channels)
                }
                let shape = h.channels == 1 ? [ht, w] : [ht, w, h.channels]
                return (NDArray(dtype: dtype, shape: shape, fortranOrder: false, storage: pixels), h)
            }
        }
    }

    static func expandPalette(_ indices: [UInt8], info: mspng_info, channels: Int) -> [UInt8] {
        var lut = [UInt8](repeating: 0, count: 256 * 4)   // missing entries: black, opaque
        withUnsafeBytes(of: info.palette) { pal in
            withUnsafeBytes(of: info.trans) { tr in
                for i in 0..<256 {
                    if i < Int(info.palette_size) {
                        lut[4 * i] = pal[3 * i]; lut[4 * i + 1] = pal[3 * i + 1]; lut[4 * i + 2] = pal[3 * i + 2]
                    }
                    lut[4 * i + 3] = i < Int(info.trans_size) ? tr[i] : 255
                }
            }
        }
        var out = [UInt8](repeating: 0, count: indices.count * channels)
        indices.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (k, idx) in src.enumerated() {
                    let b = Int(idx) * 4
                    for c in 0..<channels { dst[k * channels + c] = lut[b + c] }
                }
            }
        }
        return out
    }

    /// Builds the planar Float32 image from the interleaved decoded array.
    static func image(from array: NDArray, header h: PNGHeader, bigEndian16: Bool = false) -> MedicalImage {
        let w = h.width, ht = h.height, ch = h.channels
        let n = w * ht
        let voxels = [Float](unsafeUninitializedCapacity: n * ch) { out, count in
            array.storage.withUnsafeBytes { raw in
                let dst = out.baseAddress!
                if array.dtype == .uint16 && bigEndian16 {
                    let p = raw.bindMemory(to: UInt16.self)
                    if ch == 1 {
                        ElementConversion.parallelChunks(n) { r in for i in r { dst[i] = Float(UInt16(bigEndian: p[i])) } }
                    } else {
                        ElementConversion.parallelChunks(n) { r in
                            for i in r { for c in 0..<ch { dst[c * n + i] = Float(UInt16(bigEndian: p[i * ch + c])) } }
                        }
                    }
                } else if ch == 1 {
                    ElementConversion.convert(raw, type: array.dtype, count: n, slope: nil, inter: 0, into: dst)
                } else if array.dtype == .uint16 {
                    let p = raw.bindMemory(to: UInt16.self)
                    ElementConversion.parallelChunks(n) { r in
                        for i in r { for c in 0..<ch { dst[c * n + i] = Float(p[i * ch + c]) } }
                    }
                } else {
                    let p = raw.bindMemory(to: UInt8.self).baseAddress!
                    let d0 = dst, d1 = dst + n, d2 = dst + 2 * n, d3 = dst + min(3, ch - 1) * n
                    ElementConversion.parallelChunks(n, minimum: 1 << 16) { r in
                        switch ch {
                        case 3:
                            for i in r { d0[i] = Float(p[3 * i]); d1[i] = Float(p[3 * i + 1]); d2[i] = Float(p[3 * i + 2]) }
                        case 4:
                            for i in r {
                                d0[i] = Float(p[4 * i]); d1[i] = Float(p[4 * i + 1]); d2[i] = Float(p[4 * i + 2]); d3[i] = Float(p[4 * i + 3])
                            }
                        default:
                            for i in r { d0[i] = Float(p[2 * i]); d1[i] = Float(p[2 * i + 1]) }
                        }
                    }
                }
            }
            count = n * ch
        }
        let sp = h.spacing
        let affine = Affine.diagonal(spacing: [sp?.x ?? 1, sp?.y ?? 1, 1])
        let info = ImageInfo(storedType: array.dtype, format: "png", spacingIsKnown: sp != nil,
                             components: ch > 1 ? .color : .scalar)
        return MedicalImage(shape: ImageShape(w, ht, 1, ch), voxels: voxels, affine: affine, info: info)
    }
}

func cString(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Writes 8- and 16-bit PNG: gray, gray+alpha, RGB, RGBA (1, 2, 3 or 4 channels on the fourth axis) and label maps.
/// Values must be integers in the bit depth's range; spacing goes into pHYs (pixels per metre, rounded).
public enum PNGWriter {
    public struct Options: Sendable {
        /// 8 or 16; nil picks 16 for images read as uint16 or with values above 255, else 8.
        public var bitDepth: Int?
        /// zlib level 0-9. Levels 0 and 1 are the fast mode: the Sub filter on every row and zlib's run-length
        /// strategy (several times faster to write; larger files for smooth images).
        public var compressionLevel: Int
        public init(bitDepth: Int? = nil, compressionLevel: Int = 6) {
            self.bitDepth = bitDepth
            self.compressionLevel = compressionLevel
        }
    }

    /// Encodes to PNG bytes in memory.
    public static func encode(_ image: MedicalImage, path: String = "<memory>", options: Options = Options()) throws -> [UInt8] {
        let s = image.shape
        guard s.z == 1 else {
            throw FormatError.cannotRepresent(path: path, reason: "PNG holds 2-D images; this one is \(s) (take a slice first)")
        }
        let ch = s.t
        guard (1...4).contains(ch) else {
            throw FormatError.cannotRepresent(path: path, reason: "PNG holds 1 to 4 channels; this image has \(ch)")
        }
        let depth = options.bitDepth ?? ((image.info.storedType == .uint16 || (image.statistics?.max ?? 0) > 255) ? 16 : 8)
        guard depth == 8 || depth == 16 else {
            throw FormatError.cannotRepresent(path: path, reason: "PNG bit depth must be 8 or 16, not \(depth)")
        }
        let type: VoxelType = depth == 16 ? .uint16 : .uint8
        let planar = try ElementConversion.encode(image.voxels, as: type, path: path)
        let n = s.x * s.y
        let bps = depth / 8
        var inter = [UInt8](repeating: 0, count: planar.count)
        if ch == 1 {
            inter = planar
        } else {
            planar.withUnsafeBytes { src in
                inter.withUnsafeMutableBytes { dst in
                    for i in 0..<n {
                        for c in 0..<ch {
                            for b in 0..<bps { dst[(i * ch + c) * bps + b] = src[(c * n + i) * bps + b] }
                        }
                    }
                }
            }
        }
        let sp = image.spacing
        return try encode(interleaved: inter, width: s.x, height: s.y, channels: ch, bitDepth: depth,
                          spacing: image.info.spacingIsKnown ? [sp[0], sp[1]] : nil, path: path, compressionLevel: options.compressionLevel)
    }

    /// Encodes already-quantised pixels: `interleaved` holds width x height x channels samples, rows top to bottom,
    /// one byte each for 8-bit, two bytes in host order for 16-bit. For bulk writers (phantoms, exports) that produce
    /// integers directly; `spacing` (mm, x then y) goes into pHYs.
    public static func encode(interleaved: [UInt8], width: Int, height: Int, channels: Int, bitDepth: Int, spacing: [Double]?,
                              path: String = "<memory>", compressionLevel: Int = 6) throws -> [UInt8] {
        guard (1...4).contains(channels), bitDepth == 8 || bitDepth == 16, width >= 1, height >= 1,
              interleaved.count == width * height * channels * bitDepth / 8 else {
            throw FormatError.cannotRepresent(path: path, reason: "\(interleaved.count) bytes do not make a \(width)x\(height) PNG with \(channels) channels at \(bitDepth) bits")
        }
        let colorType: Int32 = [1: 0, 2: 4, 3: 2, 4: 6][channels]!
        var ppmX: UInt32 = 0, ppmY: UInt32 = 0
        if let sp = spacing, sp.count >= 2, sp[0] > 0, sp[1] > 0 {
            ppmX = UInt32(max(1, min(Double(UInt32.max), (1000.0 / sp[0]).rounded())))
            ppmY = UInt32(max(1, min(Double(UInt32.max), (1000.0 / sp[1]).rounded())))
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = interleaved.withUnsafeBufferPointer {
            mspng_encode($0.baseAddress, UInt32(width), UInt32(height), colorType, Int32(bitDepth), ppmX, ppmY,
                         Int32(compressionLevel), &out, &size, &message, message.count)
        }
        guard rc == 0, let p = out else {
            throw FormatError.writeFailed(path: path, reason: cString(message))
        }
        defer { mspng_free(p) }
        return Array(UnsafeBufferPointer(start: p, count: size))
    }

    /// Writes already-quantised pixels atomically (see ``encode(interleaved:width:height:channels:bitDepth:spacing:path:compressionLevel:)``).
    public static func write(interleaved: [UInt8], width: Int, height: Int, channels: Int, bitDepth: Int, spacing: [Double]?,
                             to path: String, compressionLevel: Int = 6) throws {
        let bytes = try encode(interleaved: interleaved, width: width, height: height, channels: channels, bitDepth: bitDepth,
                               spacing: spacing, path: path, compressionLevel: compressionLevel)
        try FileIO.writeAtomically(bytes, to: path)
    }

    public static func write(_ image: MedicalImage, to path: String, options: Options = Options()) throws {
        let bytes = try encode(image, path: path, options: options)
        try FileIO.writeAtomically(bytes, to: path)
    }
}
