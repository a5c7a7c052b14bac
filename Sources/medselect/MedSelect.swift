import ArgumentParser
import Foundation
import MedFormats
import MedImage
import MedMetrics

/// The `medselect` command-line tool: one subcommand per user task, each a thin layer over the libraries.
struct MedSelect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medselect",
        abstract: "Choose which medical images are worth annotating, and prove it.",
        discussion: "Errors print one line `error: <path>: <reason>` and exit with status 1.",
        version: "0.1.0",
        subcommands: [Inspect.self, Convert.self, Metrics.self, Evaluate.self, DistanceMap.self, Bench.self]
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
        do {
            var command = try MedSelect.parseAsRoot()
            try command.run()
        } catch let error as FormatError {
            fail(error.description)
        } catch let error as MetricsError {
            fail(error.description)
        } catch let error as ImageError {
            fail(error.description)
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

/// An error of the tool itself (bad combination of inputs), printed as `error: <subject>: <reason>`.
struct CommandError: Error, CustomStringConvertible {
    var subject: String
    var reason: String
    var description: String { "\(subject): \(reason)" }
}
