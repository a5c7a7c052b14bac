import Foundation
import MedFoundation

extension SHA256 {
    /// The hex digest of a file's bytes, read in 1 MiB chunks.
    static func hex(ofFile path: String) throws -> String {
        guard let fh = FileHandle(forReadingAtPath: path) else { throw DataError.badDataset(path: path, reason: "cannot open for hashing") }
        defer { try? fh.close() }
        var s = State()
        while true {
            let chunk = fh.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { s.update($0) }
        }
        return s.finish()
    }
}
