import ArgumentParser
import Foundation
import MedCompute
import MedFormats
import MedPipeline
import MedFoundation

/// `medselect run`: an experiment from its JSON configuration, with cached, resumable items, on one or several
/// workers (local processes, or a cluster's job array sharing the run folder).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment (source model, encoder, embeddings, selections, fine-tuning, scores) from a JSON configuration.",
        discussion: """
        Every stage item is stored under RUN/items/<stage>/<key>, the key hashing its inputs and settings: running \
        again after adding a strategy, a budget or a seed computes only what is new, and an interrupted run resumes \
        (training from its last epoch). --workers N runs N local worker processes; --worker makes this process one \
        worker among any number on machines that share RUN (Slurm job arrays, Kubernetes Indexed Jobs): each takes \
        ready items until none is left. Results: RUN/results.csv (strategy, budget, seed, round, site, labeled, cases, \
        dice, hd95, assd, selection), RUN/cases.csv, RUN/results.json (configuration, summary, version) and RUN/report.html (tables, paired comparisons with random and CoreSet, win matrix, Dice per site, the pool map with the picks, thumbnails). Results are \
        the same bytes whichever worker computed an item, for the same --threads. Docs/experiments.md describes the \
        configuration keys.
        Example: medselect run experiment.json --out runs/exp1 --workers 2
        """
    )
    @Argument(help: "Experiment configuration (JSON); or use --preset.") var config: String?
    @Option(help: "A seed paper's protocol instead of a configuration file: xssr (MAE; random, CoreSet, XSSR and its ablations at 5 %), coldstart-al (cold start, then 3 rounds of entropy + diversity against random), hssl (the U-Net pretrained with HSSL on every site, each a domain, and on the same images as one domain; random picks at 5 % trained from scratch and from each pretraining; the whole pool from scratch). The configuration used goes to RUN/experiment.json.")
    var preset: String?
    @Option(help: "--preset: dataset folder.") var data: String?
    @Option(help: "--preset: benchmark adapter for --data.") var benchmark: String?
    @Option(help: "--preset: source sites (comma-separated).") var sourceSites: String?
    @Option(help: "--preset: target sites (comma-separated; default every other site).") var targetSites: String?
    @Option(help: "--preset: image size for the U-Net and the encoder.") var size = 128
    @Option(help: "--preset: fine-tuning epochs (the source model trains twice as long).") var epochs = 30
    @Option(help: "--preset: seeds (comma-separated).") var seeds = "0,1,2"
    @Option(help: "--preset: budget (and budget per active-learning round), a share such as 5% or a count.") var budget = Budget.share(5)
    @Option(help: "--preset: strategies to add (comma-separated, e.g. typiclust,probcover).") var addStrategies: String?
    @Option(help: "--preset: epochs of the encoder's pretraining (default: MAE 100, HSSL twice --epochs).") var pretrainEpochs: Int?
    @Flag(inversion: .prefixedNo, help: "--preset: train the full-data reference (the whole target pool, per seed); --no-full-data when another run on the same data gives it.") var fullData = true
    @Option(help: "Run folder (shared by all workers).") var out: String
    @Option(help: "Local worker processes.") var workers = 1
    @Flag(help: "Be one worker: compute ready items until none is left (for job arrays).") var worker = false
    @Option(help: "Compute threads per worker (default: 2 divided among the local workers).") var threads: Int?
    @Flag(help: "Only the final line.") var quiet = false
    @Flag(help: "Check the configuration (a preset's is written to RUN/experiment.json), list the items to compute, and stop.") var planOnly = false

    func validate() throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be between 1 and 64") }
        guard (config == nil) != (preset == nil) else { throw ValidationError("give a configuration file or --preset (with --data and --source-sites), not both") }
        if preset != nil {
            guard data != nil, sourceSites != nil else { throw ValidationError("--preset needs --data and --source-sites") }
            guard seeds.split(separator: ",").allSatisfy({ Int($0) != nil }) else { throw ValidationError("--seeds must be integers separated by commas") }
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let pretrainEpochs, pretrainEpochs < 1 { throw ValidationError("--pretrain-epochs must be at least 1") }
    }

    func run() throws {
        // A preset's configuration is checked (keys, sites, budgets against the pool) before it is written, so that a
        // failed preset leaves nothing behind to block the corrected command.
        let preset = try self.preset.map { _ in try presetConfiguration() }
        let config = self.config ?? preset!.path
        let experiment = try preset.map { try ExperimentConfig.load(Data($0.text.utf8), path: $0.path) } ?? ExperimentConfig.load(config)
        let dataset = try experiment.loadData(configPath: config)
        if let preset, !preset.exists {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try AtomicFile.write(preset.text, to: preset.path)
            FileHandle.standardError.write(Data("[run] preset \(self.preset!): configuration written to \(preset.path)\n".utf8))
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let perWorker = threads ?? max(1, Compute.threads / workers)
        Compute.threads = perWorker
        let tag = worker ? "[worker \(ProcessInfo.processInfo.processIdentifier)]" : "[run]"
        let quiet = self.quiet
        let log: @Sendable (String) -> Void = { line in if !quiet { FileHandle.standardError.write(Data("\(tag) \(line)\n".utf8)) } }
        let plan = ExperimentPlan(config: experiment, dataset: dataset, run: out, log: log)
        log("\(plan.items.count) items: \(plan.pool.count) target pool cases, \(plan.held.count) held-out target cases, \(perWorker) thread(s) per worker")
        if planOnly {
            let store = plan.store
            // "again": carried here without its weights (Scripts/benchmark-records), needed by an item still to compute.
            let pending = Set(PlanRunner.pendingItems(plan.items, store: store).map(\.id))
            let again = plan.items.filter { pending.contains($0.id) && store.isDone($0.id) }.count
            for item in plan.items {
                let state = !pending.contains(item.id) ? "done" : store.isDone(item.id) ? "again" : "to do"
                print("\(state)\t\(item.stage)/\(item.key)\t\(item.label)")
            }
            print("plan of \(config): \(counted(plan.items.count, "item")), \(plan.items.count - pending.count) done, \(pending.count) to compute"
                  + (again > 0 ? " (\(again) carried without their weights, computed again)" : "") + "; nothing computed (--plan-only)")
            return
        }
        // Local workers: the same command as separate processes, each one worker. Ctrl-C (or SIGTERM, SIGHUP) on
        // this process stops them too; a local worker whose parent is gone stops by itself.
        var children: [Process] = []
        var stoppers: [any DispatchSourceProtocol] = []
        if workers > 1 && !worker {
            for _ in 1..<workers {
                let p = Process()
                // This very program (Foundation finds it on Linux and macOS alike); the workers run the configuration
                // file (a preset's is written by now).
                p.executableURL = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
                p.arguments = ["run", config, "--out", out, "--worker", "--threads", String(perWorker)] + (quiet ? ["--quiet"] : [])
                p.environment = ProcessInfo.processInfo.environment.merging([Self.parentVariable: String(getpid())]) { $1 }
                try p.run()
                children.append(p)
            }
            stoppers = Self.forwardSignals(to: children.map(\.processIdentifier))
        } else if worker, let parent = ProcessInfo.processInfo.environment[Self.parentVariable].flatMap(Int32.init) {
            stoppers = [Self.stopWhenOrphaned(parent: parent)]
        }
        defer { withExtendedLifetime(stoppers) {} }
        let runner = Experiment(plan: plan, run: out, log: log)
        let tally: Experiment.Tally
        do {
            tally = try runner.work()
        } catch {
            for p in children { p.terminate() }
            throw error
        }
        for p in children {
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw CommandError(subject: out, reason: "a worker process failed (exit \(p.terminationStatus)); run the command again to resume") }
        }
        let rows = try runner.writeResults(configPath: config, version: MedSelect.configuration.version)
        try ExperimentReport.write(plan: plan, rows: rows, run: out, version: MedSelect.configuration.version)
        print("\(worker ? "worker done" : "experiment done"): \(tally.computed) item(s) computed here, \(tally.reused) reused, \(tally.total) in all; "
              + "\(rows.count) result rows in \(out)/results.csv, cases.csv, results.json; report \(out)/report.html")
    }

    /// Set in the environment of the local workers `--workers N` starts: the parent's process id.
    static let parentVariable = "MEDSELECT_RUN_PARENT"

    /// On SIGINT, SIGTERM or SIGHUP: SIGTERM to every local worker, wait for them, and exit as the signal would
    /// (status 128 + signal). Items in progress keep their work folders; the next run resumes them.
    static func forwardSignals(to workers: [Int32]) -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM, SIGHUP].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("[run] stopping: signal \(sig) passed on to \(workers.count) local worker(s); run the command again to resume\n".utf8))
                for pid in workers { kill(pid, SIGTERM) }
                for pid in workers { var status: Int32 = 0; _ = waitpid(pid, &status, 0) }
                Foundation.exit(128 + sig)
            }
            source.resume()
            return source
        }
    }

    /// A local worker checks every second that the process that started it is still its parent, and stops when it is
    /// not (the parent was killed without passing a signal on, e.g. SIGKILL).
    static func stopWhenOrphaned(parent: Int32) -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler {
            if getppid() != parent {
                FileHandle.standardError.write(Data("[worker \(getpid())] the run that started this worker has ended; stopping\n".utf8))
                Foundation.exit(143)
            }
        }
        timer.resume()
        return timer
    }

    /// The preset's configuration and where it goes, RUN/experiment.json (kept if it is already there and the same;
    /// another configuration in the folder is refused). Nothing is written here.
    func presetConfiguration() throws -> (path: String, text: String, exists: Bool) {
        var o = ExperimentPresets.Options(data: data!, sourceSites: sourceSites!.split(separator: ",").map(String.init))
        o.benchmark = benchmark
        o.targetSites = (targetSites ?? "").split(separator: ",").map(String.init)
        o.size = size; o.epochs = epochs
        o.seeds = seeds.split(separator: ",").compactMap { Int($0) }
        o.budget = budget.description
        o.extraStrategies = (addStrategies ?? "").split(separator: ",").map(String.init)
        o.pretrainEpochs = pretrainEpochs
        o.fullData = fullData
        let json = try ExperimentPresets.configuration(preset!, o)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
        let path = out + "/experiment.json"
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            guard existing == text else { throw CommandError(subject: path, reason: "the run folder holds another configuration; use another --out, or run that file: medselect run \(path) --out \(out)") }
            return (path, text, true)
        }
        return (path, text, false)
    }
}
