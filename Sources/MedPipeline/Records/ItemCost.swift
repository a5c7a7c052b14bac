import Foundation
import MedFoundation

/// What computing one plan item cost: `cost.json` in the item's folder, written by ``PlanRunner`` when the item is
/// published (process CPU time and wall time of the attempt that finished it; an attempt interrupted earlier is not
/// counted, its training epochs are in the item's history.csv). Read by the benchmark report for the CPU hours per
/// protocol; the one type for that file.
public struct ItemCost: Codable, Sendable, Equatable {
    public var cpuSeconds: Double
    public var wallSeconds: Double
    /// Compute threads of the worker that computed it.
    public var threads: Int
    /// The processor it was computed on (model name, and "AVX-512" or "AVX2"): results of one experiment can come from
    /// several machines when its store travels (absent in items of earlier versions).
    public var machine: String?

    enum CodingKeys: String, CodingKey { case cpuSeconds = "cpu_seconds", wallSeconds = "wall_seconds", threads, machine }

    public static let fileName = "cost.json"

    public init(cpuSeconds: Double, wallSeconds: Double, threads: Int, machine: String? = Self.thisMachine) {
        self.cpuSeconds = cpuSeconds; self.wallSeconds = wallSeconds; self.threads = threads; self.machine = machine
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

    public func write(to folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicFile.write(Array(try encoder.encode(self)) + [10], to: folder + "/" + Self.fileName)
    }
}
