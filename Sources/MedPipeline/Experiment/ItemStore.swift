import Foundation
import MedData

/// Where an experiment's stage items live, and how workers share them with no coordinator: `RUN/items/<stage>/<key>/`
/// is a finished item (published by one atomic rename of its work folder), `<key>.work/` an item in progress (a
/// restarted worker resumes there, e.g. from the U-Net's checkpoint), `<key>.lock` a worker's claim. A claim is made
/// with an exclusive create and kept alive by touching the file; a claim whose holder is gone (same host, process
/// not running) or that has not been touched for `claimTimeout` seconds is taken over. Any number of processes on
/// any machines sharing the folder can run items this way (Slurm job arrays, Kubernetes Indexed Jobs).
///
/// A store can travel without its weights: a finished item carried to another machine as its record only (every file
/// but its weights and embeddings, which `carried.json` names; `Scripts/benchmark-records`) counts as done, and is computed
/// again only when an item still to compute needs its artifacts (``PlanRunner``).
public final class ItemStore: @unchecked Sendable {
    public let root: String
    /// Seconds after which an untouched claim counts as abandoned (MEDSELECT_CLAIM_TIMEOUT overrides).
    public var claimTimeout: TimeInterval
    let host = ProcessInfo.processInfo.hostName
    let pid = ProcessInfo.processInfo.processIdentifier

    public init(root: String, claimTimeout: TimeInterval? = nil) {
        self.root = root
        self.claimTimeout = claimTimeout ?? ProcessInfo.processInfo.environment["MEDSELECT_CLAIM_TIMEOUT"].flatMap(Double.init) ?? 600
    }

    public func folder(_ stage: String, _ key: String) -> String { "\(root)/\(stage)/\(key)" }
    func work(_ stage: String, _ key: String) -> String { folder(stage, key) + ".work" }
    func lock(_ stage: String, _ key: String) -> String { folder(stage, key) + ".lock" }

    public func isDone(_ stage: String, _ key: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: folder(stage, key), isDirectory: &dir) && dir.boolValue
    }

    /// A finished item carried here as its record only: its weights and embeddings stayed behind.
    public func isCarried(_ stage: String, _ key: String) -> Bool {
        FileManager.default.fileExists(atPath: folder(stage, key) + "/" + Self.carriedFile)
    }

    /// The marker of a carried item (written by Scripts/benchmark-records; lists the files left behind).
    public static let carriedFile = "carried.json"

    /// Claims the item for this process; false when another live worker holds it (or it is done, unless `redo`: a
    /// carried item whose artifacts are needed again).
    public func claim(_ stage: String, _ key: String, redo: Bool = false) throws -> Bool {
        guard !isDone(stage, key) || (redo && isCarried(stage, key)) else { return false }
        try FileManager.default.createDirectory(atPath: "\(root)/\(stage)", withIntermediateDirectories: true)
        let path = lock(stage, key)
        if tryCreate(path) { return true }
        // Someone holds it: take it over only if that claim is abandoned, and only one taker wins (rename is atomic).
        guard isAbandoned(path) else { return false }
        let stale = path + ".stale-\(host)-\(pid)"
        guard rename(path, stale) == 0 else { return false }
        unlink(stale)
        return tryCreate(path)
    }

    private func tryCreate(_ path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { return false }
        let text = "\(host) \(pid) \(Date().timeIntervalSince1970)\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        return true
    }

    private func isAbandoned(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        let parts = text.split(separator: " ")
        if parts.count >= 2, String(parts[0]) == host, let owner = Int32(parts[1]), owner != pid, kill(owner, 0) != 0, errno == ESRCH {
            return true
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), let modified = attributes[.modificationDate] as? Date else { return false }
        return Date().timeIntervalSince(modified) > claimTimeout
    }

    /// Runs `body` in the item's work folder while keeping the claim alive, then publishes the folder by rename and
    /// drops the claim. The work folder survives a crash, so the next claimant continues there.
    public func compute(_ stage: String, _ key: String, _ body: (_ workFolder: String) throws -> Void) throws {
        let workPath = work(stage, key), lockPath = lock(stage, key)
        try FileManager.default.createDirectory(atPath: workPath, withIntermediateDirectories: true)
        let heartbeat = DispatchSource.makeTimerSource(queue: .global())
        let interval = max(1, min(30, claimTimeout / 4))
        heartbeat.schedule(deadline: .now() + interval, repeating: interval)
        heartbeat.setEventHandler { utimes(lockPath, nil) }
        heartbeat.resume()
        defer { heartbeat.cancel() }
        do {
            try body(workPath)
        } catch {
            unlink(lockPath)
            throw error
        }
        // A carried item computed again: its record gives way to the new item (whose record matches its weights).
        if isCarried(stage, key) {
            let old = folder(stage, key) + ".carried-\(host)-\(pid)"
            if rename(folder(stage, key), old) == 0 { try? FileManager.default.removeItem(atPath: old) }
        }
        guard rename(workPath, folder(stage, key)) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(lockPath)
            // Another worker published it first (on NFS a cached lookup can hide a published item): keep theirs.
            if isDone(stage, key) { try? FileManager.default.removeItem(atPath: workPath); return }
            throw DataError.badConfiguration(path: folder(stage, key), reason: "could not publish the item (\(reason))")
        }
        unlink(lockPath)
    }
}
