import Foundation
import MedFoundation
#if canImport(Glibc)
import Glibc
#endif

/// Small POSIX helpers: whole-file reads without Foundation copies, and atomic writes.
enum FileIO {
    /// Reads a whole file into a byte array (one allocation, read(2) in a loop).
    static func readAll(_ path: String, limit: Int64 = Int64.max) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw openError(path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw FormatError.unreadable(path: path, reason: "is a folder, not a file") }
        let size = Int64(st.st_size)
        if size > limit { throw FormatError.tooLarge(path: path, bytes: size, limit: limit) }
        var out = [UInt8](unsafeUninitializedCapacity: Int(size)) { _, n in n = Int(size) }
        var done = 0
        try out.withUnsafeMutableBytes { buf in
            while done < Int(size) {
                let n = read(fd, buf.baseAddress! + done, Int(size) - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FormatError.unreadable(path: path, reason: String(cString: strerror(errno)))
                }
                if n == 0 { break }
                done += n
            }
        }
        if done < out.count { out.removeLast(out.count - done) }
        return out
    }

    /// Reads at most `count` bytes from the start of a file.
    static func readPrefix(_ path: String, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw openError(path) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw FormatError.unreadable(path: path, reason: "is a folder, not a file")
        }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        out.withUnsafeMutableBytes { buf in
            while done < count {
                let n = read(fd, buf.baseAddress! + done, count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
        }
        out.removeLast(count - done)
        return out
    }

    /// Reads exactly `count` bytes at `offset` (pread), or throws `truncated`.
    static func readRange(_ path: String, offset: Int64, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw openError(path) }
        defer { close(fd) }
        var out = [UInt8](unsafeUninitializedCapacity: count) { _, n in n = count }
        var done = 0
        try out.withUnsafeMutableBytes { buf in
            while done < count {
                let n = pread(fd, buf.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FormatError.unreadable(path: path, reason: String(cString: strerror(errno)))
                }
                if n == 0 { break }
                done += n
            }
        }
        if done < count {
            throw FormatError.truncated(path: path, reason: "\(count) bytes needed at offset \(offset); the file ends after \(done)")
        }
        return out
    }

    static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : nil
    }

    static func openError(_ path: String) -> FormatError {
        let e = errno
        if e == ENOENT { return .notFound(path: path) }
        return .unreadable(path: path, reason: String(cString: strerror(e)))
    }

    /// A temporary path beside `path` that keeps its extension(s) (``AtomicFile/temporarySibling(of:)``).
    static func temporarySibling(of path: String) -> String { AtomicFile.temporarySibling(of: path) }

    /// Renames `temp` over `path`; removes `temp` and throws a format error when that fails.
    static func commit(temp: String, to path: String) throws {
        do { try AtomicFile.commit(temp, to: path) } catch let e as AtomicFile.Failure { throw FormatError.writeFailed(path: e.path, reason: e.reason) }
    }

    /// Writes bytes to `path` atomically (``AtomicFile``), failures as format errors.
    static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        do { try AtomicFile.write(bytes, to: path) } catch let e as AtomicFile.Failure { throw FormatError.writeFailed(path: e.path, reason: e.reason) }
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try writeAtomically($0, to: path) }
    }
}

/// One name per file: absolute, with `.` / `..` and symbolic links resolved, for asking whether two paths name the same
/// file (an output that would overwrite an input; a prediction's image against a dataset's).
public func canonicalPath(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
}
