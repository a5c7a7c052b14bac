import Foundation
import MedData

/// A command's exclusive hold on its output folder for as long as it runs, so that two runs writing into one folder
/// (two `medselect train --out RUN`, say) do not both run in full with the last writer silently winning: the second
/// is refused at once, naming the first. The hold is an advisory `flock` on `FOLDER/.medselect.lock`, released by
/// the kernel when the process ends however it ends (no stale locks after a crash or Ctrl-C); the file names the
/// holder for the message. Hold the value for the command's duration; the lock goes with it.
public final class FolderLock: @unchecked Sendable {
    public let path: String
    private let descriptor: Int32

    /// Creates the folder if needed and takes the lock, or throws naming the process that holds it.
    public init(folder: String, command: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw DataError.badConfiguration(path: folder, reason: "cannot create the output folder: \(error.localizedDescription)")
        }
        path = folder + "/.medselect.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DataError.badConfiguration(path: folder, reason: "cannot create \(path) (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw DataError.badConfiguration(path: folder, reason: "another medselect process is writing into this folder"
                + (holder.isEmpty ? "" : " (\(holder))") + "; wait for it to finish, or give another output folder")
        }
        descriptor = fd
        let text = "\(command), process \(ProcessInfo.processInfo.processIdentifier) on \(ProcessInfo.processInfo.hostName)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
