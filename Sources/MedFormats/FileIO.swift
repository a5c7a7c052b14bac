import Foundation
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

    /// A temporary path in the same folder as `path` that keeps its extension(s), so that libraries choosing the
    /// layout from the name (libnifti) behave the same. The name starts with "." so folder scans skip it.
    static func temporarySibling(of path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return (dir as NSString).appendingPathComponent(".tmp-\(token)-\(name)")
    }

    /// Renames `temp` over `path` (atomic on one file system); removes `temp` and throws when that fails.
    static func commit(temp: String, to path: String) throws {
        if rename(temp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw FormatError.writeFailed(path: path, reason: reason)
        }
    }

    /// Writes bytes to `path` atomically: a temporary file in the same folder, fsync-free, then rename.
    static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) || !isDir.boolValue {
            throw FormatError.writeFailed(path: path, reason: "folder \(dir) does not exist")
        }
        let temp = temporarySibling(of: path)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd < 0 { throw FormatError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd); unlink(temp)
                throw FormatError.writeFailed(path: path, reason: reason)
            }
            done += n
        }
        if close(fd) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw FormatError.writeFailed(path: path, reason: reason)
        }
        try commit(temp: temp, to: path)
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

/// Atomic file writes for the modules above the formats (tables, manifests): a temporary file in the same folder,
/// then a rename, so a reader never sees half a file and an interrupted write leaves the old file in place.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws { try FileIO.writeAtomically(bytes, to: path) }
    public static func write(_ text: String, to path: String) throws { try FileIO.writeAtomically(Array(text.utf8), to: path) }
}
