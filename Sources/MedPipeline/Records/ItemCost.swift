import Foundation
import MedFoundation

/// What computing one plan item cost: `cost.json` in the item's folder, written by ``PlanRunner`` when the item is
/// published: process CPU time and wall time summed over every attempt, an interrupted attempt's share kept in the work
/// folder's `cost.partial.json` (rewritten every minute by ``Meter``) for the attempt that resumes it. Read by the
/// benchmark report for the CPU hours per protocol; the one type for both files.
public struct ItemCost: Codable, Sendable, Equatable {
    public var cpuSeconds: Double
    public var wallSeconds: Double
    /// Compute threads of the worker that computed it.
    public var threads: Int
    /// The processor it was computed on (model name, and "AVX-512" or "AVX2"): results of one experiment can come from
    /// several machines when its store travels (absent in items of earlier versions).
    public var machine: String?
    /// Attempts the sums cover: 1 for an item computed in one go, more when workers were stopped and it was resumed
    /// (absent in items of earlier versions, whose sums cover the last attempt only).
    public var attempts: Int?

    enum CodingKeys: String, CodingKey {
        case cpuSeconds = "cpu_seconds", wallSeconds = "wall_seconds", threads, machine, attempts
    }

    public static let fileName = "cost.json"
    /// The share of attempts interrupted so far, in an item's work folder.
    public static let partialFileName = "cost.partial.json"

    public init(cpuSeconds: Double, wallSeconds: Double, threads: Int, machine: String? = Self.thisMachine, attempts: Int? = 1) {
        self.cpuSeconds = cpuSeconds; self.wallSeconds = wallSeconds; self.threads = threads; self.machine = machine
        self.attempts = attempts
    }

    /// Reads a cost file; nil when it is missing or unreadable (a partial file cut short by a crash counts as no
    /// earlier attempt rather than failing the item).
    public static func read(_ path: String) -> ItemCost? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(ItemCost.self, from: data)
    }

    /// Measures one attempt at an item from its start, on top of the attempts before it (the work folder's partial
    /// file), and keeps the partial file current every `interval` seconds so that a killed worker loses at most that.
    public final class Meter: @unchecked Sendable {
        private let folder: String, earlier: ItemCost?, threads: Int
        private let cpu = ItemCost.processCPUSeconds(), wall = Date()
        private let timer: DispatchSourceTimer
        private let lock = NSLock()
        private var finished = false

        public init(folder: String, threads: Int, interval: TimeInterval = 60) {
            self.folder = folder; self.threads = threads
            earlier = ItemCost.read(folder + "/" + ItemCost.partialFileName)
            timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [weak self] in self?.writePartial() }
            timer.resume()
        }

        /// Earlier attempts plus this one so far.
        public func sum() -> ItemCost {
            ItemCost(cpuSeconds: (earlier?.cpuSeconds ?? 0) + ItemCost.processCPUSeconds() - cpu,
                     wallSeconds: (earlier?.wallSeconds ?? 0) + Date().timeIntervalSince(wall), threads: threads,
                     attempts: (earlier?.attempts ?? 0) + 1)
        }

        private func writePartial() {
            lock.lock(); defer { lock.unlock() }
            if !finished { try? sum().write(to: folder, name: ItemCost.partialFileName) }
        }

        /// Stops measuring; writes `cost.json` with every attempt's sum and removes the partial file.
        public func finish() throws {
            timer.cancel()
            lock.lock(); finished = true; lock.unlock()
            try sum().write(to: folder)
            unlink(folder + "/" + ItemCost.partialFileName)
        }

        deinit { timer.cancel() }
    }

    /// This machine's processor as `machine` records it, from /proc/cpuinfo (nil where there is none).
    public static let thisMachine: String? = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n")
        func field(_ name: String) -> String? {
            lines.first { $0.hasPrefix(name) }.flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard let model = field("model name") else { return nil }
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
        return model + (flags.contains("avx512f") ? ", AVX-512" : flags.contains("avx2") ? ", AVX2" : "")
    }()

    /// User plus system CPU time of this process so far, in seconds (with one item at a time per worker process, the
    /// difference over an item is the item's cost).
    public static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    public func write(to folder: String, name: String = Self.fileName) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicFile.write(Array(try encoder.encode(self)) + [10], to: folder + "/" + name)
    }
}
