import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MedFormats
import MedImage
import MedMetrics
import MedSelection

/// The `medselect` command-line tool: one subcommand per user task, each a thin layer over the libraries.
struct MedSelect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medselect",
        abstract: "Choose which medical images are worth annotating, and prove it.",
        discussion: "Errors print one line `error: <path>: <reason>` and exit with status 1.",
        version: "0.1.0",
        subcommands: [Inspect.self, Convert.self, Metrics.self, Evaluate.self, DistanceMap.self, Select.self, Bench.self]
    )
}

/// Options shared by commands that read images.
struct ReadLimitOptions: ParsableArguments {
    @Option(name: .customLong("max-memory"), help: "Largest image to decode, in MiB (default 4096, or MEDSELECT_MAX_BYTES).")
    var maxMemoryMiB: Int?

    var readOptions: ReadOptions {
        if let m = maxMemoryMiB { return ReadOptions(maxBytes: Int64(m) << 20) }
        return .default
    }

    func validate() throws {
        if let m = maxMemoryMiB, m <= 0 { throw ValidationError("--max-memory must be a positive number of MiB") }
    }
}

@main
enum Main {
    static func main() {
        #if canImport(Glibc)
        // Large image buffers come and go on every load: keep them in the heap for reuse instead of fresh mmap'd
        // pages that must be faulted in each time (glibc's default threshold is 128 KiB, adapting up to 32 MiB).
        _ = glibcMallopt(-3, 512 << 20)   // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)     // M_TRIM_THRESHOLD
        #endif
        do {
            var command = try MedSelect.parseAsRoot()
            try command.run()
        } catch let error as FormatError {
            fail(error.description)
        } catch let error as MetricsError {
            fail(error.description)
        } catch let error as ImageError {
            fail(error.description)
        } catch let error as SelectionError {
            fail("selection: \(error.description)")
        } catch let error as CommandError {
            fail(error.description)
        } catch {
            MedSelect.exit(withError: error)
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
}

#if canImport(Glibc)
/// glibc's `mallopt` (declared in malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt")
func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// An error of the tool itself (bad combination of inputs), printed as `error: <subject>: <reason>`.
struct CommandError: Error, CustomStringConvertible {
    var subject: String
    var reason: String
    var description: String { "\(subject): \(reason)" }
}
