import ArgumentParser
import Foundation
import MedFoundation
import MedPipeline
import MedData
#if canImport(Glibc)
import Glibc
#endif
import MedFormats
import MedImage
import MedMetrics
import MedSelection
import MedNN
import MedTensor

/// The `medselect` command-line tool: one subcommand per user task, each a thin layer over the libraries.
struct MedSelect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medselect",
        abstract: "Choose which medical images are worth annotating, and prove it.",
        discussion: "Errors print one line `error: <path>: <reason>` and exit with status 1.",
        version: "0.1.0",
        subcommands: [Pick.self, Inspect.self, Convert.self, Metrics.self, Evaluate.self, DistanceMap.self, Pretrain.self, Embed.self, EmbedMerge.self, Uncertainty.self, Select.self, Sites.self, Phantom.self, Index.self, Summary.self, Export.self, Cache.self, Train.self, Predict.self, Run.self, Advise.self, WorklistCommand.self, ImportLabels.self, Bench.self]
    )
}

/// Options shared by commands that read images.
struct ReadLimitOptions: ParsableArguments {
    @Option(name: .customLong("max-memory"),
            help: "Largest image to decode or compute (resampled, padded, stacked), in MiB (default 4096, or MEDSELECT_MAX_BYTES in bytes).")
    var maxMemoryMiB: Int?

    @Option(help: "For a DICOM folder holding several series: the SeriesInstanceUID to read (the error lists them).")
    var series: String?

    var readOptions: ReadOptions {
        var o = maxMemoryMiB.map { ReadOptions(maxBytes: Int64($0) << 20) } ?? .default
        o.dicomSeries = series
        return o
    }

    func validate() throws {
        if let m = maxMemoryMiB, m <= 0 { throw ValidationError("--max-memory must be a positive number of MiB") }
    }
}

/// A command that reads images: its `--max-memory` becomes the process's limit (``MemoryLimit``) for every reader and
/// every operation whose result size comes from the options.
protocol ReadsImages {
    var limits: ReadLimitOptions { get }
}

/// The memory limit for this run: `--max-memory` when the command has it and it was given, else MEDSELECT_MAX_BYTES
/// (which must then be a positive number of bytes), else 4 GiB.
func memoryLimit(for command: ParsableCommand) throws -> Int64 {
    if let m = (command as? ReadsImages)?.limits.maxMemoryMiB { return Int64(m) << 20 }
    if let s = ProcessInfo.processInfo.environment["MEDSELECT_MAX_BYTES"] {
        guard let v = Int64(s.trimmingCharacters(in: .whitespaces)), v > 0 else {
            throw CommandError(subject: "MEDSELECT_MAX_BYTES", reason: "'\(s)' is not a positive number of bytes (e.g. 8589934592 for 8 GiB)")
        }
        return v
    }
    return 4 << 30
}

@main
enum Main {
    static func main() {
        selectOpenBLASKernels()
        #if canImport(Glibc)
        // Large image buffers come and go on every load: keep them in the heap for reuse instead of fresh mmap'd
        // pages that must be faulted in each time (glibc's default threshold is 128 KiB, adapting up to 32 MiB).
        _ = glibcMallopt(-3, 512 << 20)   // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)     // M_TRIM_THRESHOLD
        #endif
        do {
            var command = try MedSelect.parseAsRoot()
            MemoryLimit.maxBytes = try memoryLimit(for: command)
            try command.run()
        } catch let error as MedError {
            // Every MedSelect error (formats, data, images, training, selection, analysis, experiments, this tool's).
            fail(error.description)
        } catch let error as ValidationError {
            MedSelect.exit(withError: error)
        } catch let error as CleanExit {
            MedSelect.exit(withError: error)
        } catch let error as ExitCode {
            MedSelect.exit(withError: error)
        } catch let error as CocoaError {
            // Foundation file errors carry the path in userInfo.
            let path = (error.userInfo[NSFilePathErrorKey] as? String) ?? error.userInfo[NSURLErrorKey].map { "\($0)" } ?? "file"
            fail("\(path): \(error.localizedDescription)")
        } catch {
            // Argument-parsing errors (unknown options, missing values) print their own usage text.
            MedSelect.exit(withError: error)
        }
    }

    /// Settings the numeric libraries read when they load, so they must be in the environment before the process
    /// starts; the tool re-executes itself once when one is missing (MEDSELECT_NO_REEXEC=1 turns this off):
    /// - Debian's OpenBLAS 0.3.21 picks its AVX2 kernels on AVX-512 processors it does not know (Zen 4/5); its SkylakeX
    ///   kernels run large products about 1.8x faster there: OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512 and
    ///   the user set no core type. (OpenBLAS is only MedCompute's fallback SGEMM now.)
    /// OpenMP's wait policy is left at libgomp's default (spin briefly, then sleep): MedSelect's own parallel loops run
    /// on the same OpenMP threads as oneDNN (MedCompute), so a thread that spins after a convolution is ready for the
    /// normalisation that follows, instead of competing with a second pool (OMP_WAIT_POLICY=passive was needed while
    /// the loops ran on Dispatch's threads; it now costs 4 % of a U-Net step).
    static func selectOpenBLASKernels() {
        #if os(Linux) && arch(x86_64)
        let env = ProcessInfo.processInfo.environment
        guard env["MEDSELECT_NO_REEXEC"] == nil else { return }
        var changed = false
        if env["OPENBLAS_CORETYPE"] == nil {
            // procfs files report size 0, so read /proc/cpuinfo with a stdio loop rather than Foundation.
            var flags = ""
            if let f = fopen("/proc/cpuinfo", "r") {
                var line = [CChar](repeating: 0, count: 8192)
                while fgets(&line, Int32(line.count), f) != nil {
                    let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    if text.hasPrefix("flags") { flags = text; break }
                }
                fclose(f)
            }
            if flags.contains(" avx512f "), flags.contains(" avx512bw ") { setenv("OPENBLAS_CORETYPE", "SkylakeX", 1); changed = true }
        }
        guard changed else { return }
        setenv("MEDSELECT_NO_REEXEC", "1", 1)
        var args = CommandLine.arguments.map { strdup($0) }
        args.append(nil)
        // This executable's path from Foundation (portable; it reads /proc/self/exe on Linux itself).
        guard let executable = Bundle.main.executablePath else { return }
        execv(executable, &args)
        // execv only returns on failure: carry on with the defaults.
        #endif
    }

    static func fail(_ message: String) -> Never {
        if ProgressLine.open.load(ordering: .relaxed) { FileHandle.standardError.write(Data("\n".utf8)) }
        // One line per problem (a config file can have several), each as `error: <path>: <reason>`.
        FileHandle.standardError.write(Data(message.split(separator: "\n").map { "error: \($0)\n" }.joined().utf8))
        exit(1)
    }
}

#if canImport(Glibc)
/// glibc's `mallopt` (declared in malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt")
func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// An error of the tool itself (bad combination of inputs), printed as `error: <subject>: <reason>`.
/// "1 case", "3 cases": a count with its noun in the right number (regular plurals; give `plural` otherwise).
func counted(_ n: Int, _ noun: String, plural: String? = nil) -> String { "\(n) \(n == 1 ? noun : plural ?? noun + "s")" }

struct CommandError: MedError {
    var subject: String
    var reason: String
    var path: String { subject }
}
