import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Progress of long work on stderr. On a terminal: one line rewritten in place (`[stage] 40/100 cases, 12/s, 5 s
/// left`). In a log (stderr not a terminal): a line per update, but none within `MEDSELECT_PROGRESS_INTERVAL` seconds
/// (default 2) of the start or of the previous line, so logs stay readable, never hold `\r` runs, and short runs print
/// only their final line. `finish` ends the line; an error printed while a line is open starts on a fresh line.
final class ProgressLine: Sendable {
    static let isTerminal = isatty(2) != 0
    /// Seconds between lines in a log.
    static let interval: Double = ProcessInfo.processInfo.environment["MEDSELECT_PROGRESS_INTERVAL"].flatMap(Double.init) ?? 2
    /// Whether an unfinished in-place line is on the terminal (the error printer ends it first).
    static let open = Atomic(false)

    let stage: String
    let quiet: Bool
    private let state = Mutex<(start: Date, lastPrint: Date?, last: String, printed: String)>((Date(), nil, "", ""))

    init(_ stage: String, quiet: Bool = false) {
        self.stage = stage
        self.quiet = quiet
    }

    /// Reports `text` as the current state.
    func callAsFunction(_ text: String) {
        guard !quiet else { return }
        let now = Date()
        state.withLock { s in
            s.last = text
            if Self.isTerminal {
                FileHandle.standardError.write(Data("\r\u{1B}[K[\(stage)] \(text)".utf8))
                Self.open.store(true, ordering: .relaxed)
            } else if now.timeIntervalSince(s.lastPrint ?? s.start) >= Self.interval {
                FileHandle.standardError.write(Data("[\(stage)] \(text)\n".utf8))
                s.lastPrint = now
                s.printed = text
            }
        }
    }

    /// `done` of `total` `unit`, with the rate and the time left, and `item` (the case at hand) when given.
    func update(_ done: Int, of total: Int, unit: String, item: String? = nil) {
        let elapsed = state.withLock { Date().timeIntervalSince($0.start) }
        let rate = Double(done) / max(elapsed, 1e-9)
        var text = "\(done)/\(total) \(unit)"
        if done > 0 && elapsed > 0.5 {
            text += rate >= 10 ? String(format: ", %.0f/s", rate) : String(format: ", %.1f/s", rate)
            if done < total { text += ", " + Self.duration(Double(total - done) / rate) + " left" }
        }
        if let item { text += " (\(item))" }
        self(text)
    }

    /// Ends the progress: on a terminal the line is closed (with `text` when given); in a log `text` (or the last
    /// state, when it was not printed) is written.
    func finish(_ text: String? = nil) {
        guard !quiet else { return }
        state.withLock { s in
            let final = text ?? s.last
            if Self.isTerminal {
                FileHandle.standardError.write(Data("\r\u{1B}[K[\(stage)] \(final)\n".utf8))
                Self.open.store(false, ordering: .relaxed)
            } else if !final.isEmpty && final != s.printed {
                FileHandle.standardError.write(Data("[\(stage)] \(final)\n".utf8))
            }
            s.lastPrint = Date()
        }
    }

    /// "42 s", "3 min 5 s", "2 h 10 min".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \((s % 3600) / 60) min"
    }
}
