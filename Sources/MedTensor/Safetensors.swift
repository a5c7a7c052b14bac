import Foundation
import MedFoundation

/// Reading and writing named tensors in the safetensors format (Hugging Face): an 8-byte little-endian header length,
/// a JSON header `{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`,
/// then the little-endian data. Readable by Python's `safetensors.numpy.load_file`.
public enum Safetensors {
    public enum Error: MedError, Sendable, Equatable {
        case invalid(path: String, reason: String)
        public var path: String { switch self { case .invalid(let p, _): return p } }
        public var reason: String { switch self { case .invalid(_, let r): return r } }
    }

    /// Writes `tensors` (F32) with string metadata (e.g. the model configuration), atomically.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
            offset += 4 * t.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }   // pad with spaces so the data is 8-byte aligned
        var bytes = Data()
        var n = UInt64(json.count).littleEndian
        bytes.append(Data(bytes: &n, count: 8))
        bytes.append(json)
        for name in names {
            tensors[name]!.data.withUnsafeBufferPointer { p in
                // Float32 is little-endian on every platform Swift runs here; be explicit anyway.
                let le = p.map { $0.bitPattern.littleEndian }
                le.withUnsafeBufferPointer { bytes.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: 4 * p.count)) }
            }
        }
        do { try AtomicFile.write(bytes, to: path) } catch let e as AtomicFile.Failure { throw Error.invalid(path: path, reason: "cannot write: \(e.reason)") }
    }

    /// Reads every F32 tensor and the metadata; other dtypes, bad offsets, truncation and huge headers are errors.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw Error.invalid(path: path, reason: "cannot read the file") }
        guard data.count >= 8 else { throw Error.invalid(path: path, reason: "shorter than the 8-byte header length") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= 100_000_000, 8 + Int(n) <= data.count else { throw Error.invalid(path: path, reason: "header length \(n) does not fit the file of \(data.count) bytes") }
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as? [String: Any] else {
            throw Error.invalid(path: path, reason: "the header is not a JSON object")
        }
        let base = 8 + Int(n)
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" { metadata = value as? [String: String] ?? [:]; continue }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String, let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw Error.invalid(path: path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard dtype == "F32" else { throw Error.invalid(path: path, reason: "tensor '\(name)' is \(dtype); only F32 is read") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw Error.invalid(path: path, reason: "tensor '\(name)' has a negative dimension") }
            let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], count < Int.max / 4, offsets[1] - offsets[0] == 4 * count, base + offsets[1] <= data.count else {
                throw Error.invalid(path: path, reason: "tensor '\(name)': offsets \(offsets) do not match shape \(shape) in a file of \(data.count) bytes")
            }
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                for i in 0..<count { values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + offsets[0] + 4 * i, as: UInt32.self))) }
            }
            tensors[name] = Tensor(shape: shape, data: values)
        }
        return (tensors, metadata)
    }
}
