import Foundation
internal import CZlib

/// zlib for the formats that compress their data blocks: MetaImage's `.zraw` (zlib stream) and NRRD's gzip
/// encoding (gzip stream). One inflate that reads either and one deflate that writes either.
enum Zlib {
    /// Inflates a zlib or gzip stream into exactly `expected` bytes.
    static func inflate(_ input: [UInt8], expected: Int, path: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: expected)
        var stream = z_stream()
        var rc = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw FormatError.corrupt(path: path, reason: "zlib could not start") }
        defer { inflateEnd(&stream) }
        var produced = 0
        input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { outp in
                stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
                stream.avail_in = UInt32(inp.count)
                stream.next_out = outp.baseAddress
                stream.avail_out = UInt32(outp.count)
                rc = CZlib.inflate(&stream, Z_FINISH)
                produced = outp.count - Int(stream.avail_out)
            }
        }
        if rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_MEM_ERROR {
            let msg = stream.msg.map { String(cString: $0) } ?? "invalid data"
            throw FormatError.corrupt(path: path, reason: "compressed data is damaged (zlib: \(msg))")
        }
        if produced < expected {
            throw FormatError.truncated(path: path, reason: "compressed data holds \(produced) of \(expected) bytes")
        }
        return out
    }

    /// Compresses `input` as a zlib stream (ITK's `.zraw`, compressed `.mha`) or, with `gzip`, a gzip stream (NRRD).
    static func deflate(_ input: [UInt8], gzip: Bool = false, level: Int32 = 6, path: String) throws -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + (gzip ? 16 : 0), 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw FormatError.writeFailed(path: path, reason: "zlib could not start")
        }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var rc: Int32 = 0, produced = 0
        input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { outp in
                stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
                stream.avail_in = UInt32(inp.count)
                stream.next_out = outp.baseAddress
                stream.avail_out = UInt32(outp.count)
                rc = CZlib.deflate(&stream, Z_FINISH)
                produced = outp.count - Int(stream.avail_out)
            }
        }
        guard rc == Z_STREAM_END else { throw FormatError.writeFailed(path: path, reason: "compression failed (zlib \(rc))") }
        return Array(out.prefix(produced))
    }
}
