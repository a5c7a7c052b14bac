import ArgumentParser
import Foundation
import MedData

/// `medselect phantom`: writes a synthetic multi-site benchmark in the real dataset's layout.
struct Phantom: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a multi-site phantom benchmark (chest X-ray, fundus, prostate MRI) with known scanner shift.",
        discussion: """
        Writes every site in the real benchmark's layout (Montgomery/Shenzhen, RIGA+, the six-site prostate collection), \
        plus phantom_cases.csv (one row per case: site, known distance, sub-population, files, measurements), \
        phantom_sites.json (the configuration used) and contact_sheet.png. Same seed, same bytes.
        Presets: cxr graded; fundus graded; prostate graded, six-site. Docs/datasets.md describes the layouts. \
        What the defaults cost (5 sites x 20 cases at 256 px, 2 cores): chest X-ray 13 MB in under a second, fundus 11 MB \
        in a second, prostate MRI volumes 200 MB in 40 s (52 MB and 9 s at --size 128); --native-size writes the real \
        sizes, e.g. about 3 MB per chest X-ray case.
        Example: medselect phantom --benchmark cxr --preset graded --count 40 --size 256 --seed 1 --out phantoms/cxr
        """
    )
    @Option(help: "cxr, fundus or prostate.") var benchmark: String
    @Option(help: "A built-in set of sites (default: graded; six-site: prostate only).") var preset: PhantomPresetName?
    @Option(help: "Sites JSON ({\"benchmark\": ..., \"sites\": [...]}; see Docs/datasets.md).") var sites: String?
    @Option(help: "Cases per site (a site's own count wins).") var count = 20
    @Option(help: "Long image side in pixels (default 256, which a first run can afford; the field of view is kept).") var size: Int = 256
    @Flag(name: .customLong("native-size"), help: "Each site's native image size instead (chest X-ray 2048-4892 px: about 3 MB per case).")
    var nativeSize = false
    @Flag(help: "Replace an earlier phantom benchmark in --out (a folder holding phantom_sites.json); other non-empty folders are refused.")
    var replace = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Output folder.") var out: String
    @Flag(help: "No progress lines on stderr.") var quiet = false

    /// An empty or new folder is used as it is; an earlier phantom benchmark (phantom_sites.json) is emptied with
    /// `replace`; anything else is refused, so old cases never mix with new ones.
    static func prepareFolder(_ out: String, replace: Bool) throws {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: out), !entries.isEmpty else { return }
        guard replace else {
            throw CommandError(subject: out, reason: "the folder is not empty (\(entries.count) entries); give another --out, or --replace to regenerate an earlier phantom benchmark there")
        }
        guard entries.contains("phantom_sites.json") else {
            throw CommandError(subject: out, reason: "--replace only empties a folder that medselect phantom wrote (it holds phantom_sites.json); this one does not")
        }
        for e in entries { try fm.removeItem(atPath: (out as NSString).appendingPathComponent(e)) }
    }

    func run() throws {
        guard let bench = PhantomBenchmark(rawValue: benchmark) else {
            throw ValidationError("--benchmark must be cxr, fundus or prostate")
        }
        guard preset == nil || sites == nil else { throw ValidationError("give --preset or --sites, not both") }
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        if size < 16 || size > 8192 { throw ValidationError("--size must lie in 16...8192") }
        try Self.prepareFolder(out, replace: replace)
        let config: PhantomConfig
        if let path = sites {
            config = try PhantomConfig.load(path)
            guard config.benchmark == bench else {
                throw DataError.badConfiguration(path: path, reason: "the file describes \(config.benchmark.rawValue) sites, not \(bench.rawValue)")
            }
        } else {
            config = try PhantomConfig.preset(preset?.rawValue ?? "graded", benchmark: bench)
        }
        let start = Date()
        let generator = PhantomGenerator(config: config, seed: seed, count: count, size: nativeSize ? nil : size)
        let progress = ProgressLine("phantom", quiet: quiet)
        let cases = try generator.write(to: out, progress: progress.callback)
        progress.finish()
        print(String(format: "wrote %d cases from %d sites to %@ in %.1f s (phantom_cases.csv, contact_sheet.png)",
                     cases.count, config.sites.count, out, Date().timeIntervalSince(start)))
    }
}
