import Foundation
#if canImport(Glibc)
import Glibc
/// write(2), which the enum's own `write` methods hide.
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Atomic file writes: the bytes go to a temporary file in the destination's folder, which is renamed over the
/// destination (atomic on one file system), so a reader sees the old file or the whole new one, never a part. The
/// one implementation of this in MedSelect: formats, checkpoints, tables, reports and the item store use it.
public enum AtomicFile {
    /// Why a write failed; nothing was left at the destination or beside it.
    public struct Failure: MedError, Equatable {
        public var path: String
        public var reason: String
        public init(path: String, reason: String) { self.path = path; self.reason = reason }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws { try bytes.withUnsafeBytes { try write($0, to: path) } }
    public static func write(_ text: String, to path: String) throws { try write(Array(text.utf8), to: path) }
    public static func write(_ data: Data, to path: String) throws { try data.withUnsafeBytes { try write($0, to: path) } }

    /// Writes `bytes` to `path` atomically (no fsync: a crash may lose the new file, never leave half of it).
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir.isEmpty ? "." : dir, isDirectory: &isDir) || !isDir.boolValue {
            throw Failure(path: path, reason: "folder \(dir) does not exist")
        }
        let temp = temporarySibling(of: path)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd < 0 { throw Failure(path: path, reason: String(cString: strerror(errno))) }
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd); unlink(temp)
                throw Failure(path: path, reason: reason)
            }
            done += n
        }
        if close(fd) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw Failure(path: path, reason: reason)
        }
        try commit(temp, to: path)
    }

    /// A temporary path in the same folder as `path` that keeps its extension(s), so that libraries choosing the
    /// layout from the name (libnifti) behave the same. The name starts with "." so folder scans skip it.
    public static func temporarySibling(of path: String) -> String {
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return (dir as NSString).appendingPathComponent(".tmp-\(token)-\(name)")
    }

    /// Renames `temp` over `path` (atomic on one file system); removes `temp` and throws when that fails.
    public static func commit(_ temp: String, to path: String) throws {
        if rename(temp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw Failure(path: path, reason: reason)
        }
    }
}
