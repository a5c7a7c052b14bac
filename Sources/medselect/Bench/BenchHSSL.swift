import ArgumentParser
import Foundation
import MedCompute
import MedNN
import MedTensor
import MedFoundation

/// Times HSSL pretraining steps against U-Net training steps of the same network in the same process, per image.
struct BenchHSSL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hssl",
        abstract: "Time HSSL pretraining steps against U-Net training steps (same U-Net, same run), per image.",
        discussion: """
        The U-Net of the benchmark configuration (base 16, 4 levels, batch norm) at --size px. An HSSL step takes \
        --pairs images, makes two augmented views of each (crop, flip, intensity, blur, noise), runs both through the \
        U-Net, and back-propagates the global and dense NT-Xent terms and the domain cross-entropy (3 domains), with \
        AdamW. A U-Net step is a supervised Dice + cross-entropy step on --unet-batch images with Adam. Rounds \
        alternate the two (HSSL, U-Net, HSSL, ...) so that both see the same machine state; the ratio per image is \
        reported per round. Each HSSL image costs two U-Net passes (its two views) plus the heads and augmentation, so \
        about 2 is the expectation.
        Example: medselect bench hssl --rounds 3 --json
        """
    )
    @Option(help: "Images per HSSL step (each gives two views).") var pairs = 8
    @Option(help: "Images per U-Net step.") var unetBatch = 8
    @Option(help: "Image side.") var size = 128
    @Option(help: "Timed steps per round and kind.") var iters = 6
    @Option(help: "Rounds (HSSL then U-Net in each).") var rounds = 3
    @Option(help: "Threads.") var threads = 2
    @Flag(help: "One JSON object.") var json = false

    func run() throws {
        guard pairs >= 2, unetBatch >= 1, iters >= 1, rounds >= 1, threads >= 1, size % 16 == 0 else {
            throw ValidationError("need --pairs >= 2, --unet-batch, --iters, --rounds, --threads >= 1 and --size a multiple of 16")
        }
        setenv("OPENBLAS_NUM_THREADS", String(threads), 1)
        Compute.threads = threads
        var rng = SplitMix64(seed: 1)
        func noise(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1..<1, using: &rng) } }
        var c = HSSLModel.Configuration()
        c.imageSize = size; c.domains = ["a", "b", "c"]
        let hssl = HSSLModel(c, seed: 0)
        let pretrainer = HSSLPretrainer(model: hssl, config: HSSLPretrainingConfig(), folder: NSTemporaryDirectory())
        let stack = ImageStack(values: noise(pairs * size * size), count: pairs, channels: 1, size: size)
        let domains = (0..<pairs).map { $0 % 3 }
        var hopt = Adam.adamW(hssl.parameters, learningRate: 1e-3, weightDecay: 1e-4)
        let unet = UNet(seed: 0)
        let x = Tensor(shape: [unetBatch, 1, size, size], data: noise(unetBatch * size * size))
        let y = (0..<(unetBatch * size * size)).map { i in Float((i / size) % size > size / 2 ? 1 : 0) }
        var uopt = Adam(unet.parameters, learningRate: 1e-3)
        var ratios: [Double] = [], hsslTimes: [Double] = [], unetTimes: [Double] = []
        for _ in 0..<rounds {
            let h = try PhasedSteps(iterations: iters, warmup: 1) { _ in
                var g = SplitMix64(seed: 7)
                let (a, b, geometry, d) = pretrainer.views(stack, domains, Array(0..<pairs), rng: &g)
                hopt.zeroGrad()
                try hssl.losses(a, b, geometries: geometry, domains: d).total.backward()
                hopt.step()
            }
            let u = try PhasedSteps(iterations: iters, warmup: 1) { _ in
                uopt.zeroGrad()
                try Loss.diceCE(try unet(x), y).backward()
                uopt.step()
            }
            let (hi, ui) = (h.median / Double(pairs), u.median / Double(unetBatch))
            hsslTimes.append(hi); unetTimes.append(ui); ratios.append(hi / ui)
        }
        func r2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
        let obj: [String: Any] = ["bench": "hssl_vs_unet_step", "lib": "medselect", "img": size, "pairs": pairs, "unet_batch": unetBatch, "threads": threads,
                                  "hssl_ms_per_image": hsslTimes.map(r2), "unet_ms_per_image": unetTimes.map(r2), "ratio_per_round": ratios.map(r2),
                                  "ratio_median": r2(PhasedSteps.median(ratios)), "isa": Layout.instructionSet, "peak_rss_mb": SyntheticData.peakRSSMegabytes()]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for (k, r) in ratios.enumerated() {
                print(String(format: "round %d: HSSL %.1f ms per image (%d pairs), U-Net %.1f ms per image (batch %d): ratio %.2f", k + 1, hsslTimes[k], pairs,
                             unetTimes[k], unetBatch, r))
            }
            print(String(format: "median ratio %.2f (an HSSL image costs this many U-Net training images); ISA %@", PhasedSteps.median(ratios), Layout.instructionSet))
        }
    }
}
