import ArgumentParser
import Foundation
import MedCompute
import MedNN
import MedTensor
import MedFoundation

/// Times masked-autoencoder training steps (masking, forward, loss, backward, AdamW) in the configuration of
/// Scripts/reference/torch_mae_step.py.
struct BenchMAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mae",
        abstract: "Time masked-autoencoder training steps against the PyTorch reference's configuration.",
        discussion: """
        The benchmark configuration of Scripts/reference/torch_mae_step.py: 128 x 128 gray images, patch 16, mask \
        ratio 0.75, encoder width 192, depth 6, 3 heads, MLP ratio 4; decoder width 128, depth 2, 4 heads; loss on \
        the hidden patches; AdamW (learning rate 1.5e-4, weight decay 0.05). Scripts/bench-mae runs it beside PyTorch.
        Example: medselect bench mae --batch 32 --threads 2 --json
        """
    )
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Timed steps.") var iters = 20
    @Option(help: "Untimed steps first.") var warmup = 3
    @Option(help: "Threads (oneDNN and MedSelect's kernels).") var threads = 2
    @Flag(help: "One JSON object.") var json = false

    func run() throws {
        guard batch >= 1, iters >= 1, warmup >= 0, threads >= 1 else { throw ValidationError("batch, iters and threads must be at least 1") }
        setenv("OPENBLAS_NUM_THREADS", String(threads), 1)
        Compute.threads = threads
        let config = MaskedAutoencoder.Configuration()
        let model = MaskedAutoencoder(config, seed: 0)
        var rng = SplitMix64(seed: 1)
        let x = Tensor(shape: [batch, 1, 128, 128], data: (0..<(batch * 128 * 128)).map { _ in Float.random(in: 0..<1, using: &rng) })
        var opt = Adam.adamW(model.parameters, learningRate: 1.5e-4, weightDecay: 0.05)
        opt.decays = model.decayMask
        var lastLoss: Float = 0
        let timing = try PhasedSteps(iterations: iters, warmup: warmup) { lap in
            opt.zeroGrad()
            let (loss, _, _) = try model.forward(x, noise: model.noise(batch: batch, rng: &rng))
            lap()
            loss.backward()
            lap()
            opt.step()
            lap()
            lastLoss = loss.item
        }
        let phaseMedians = (0..<3).map(timing.phaseMedian)
        let (med, times) = (timing.median, timing.times)
        let obj: [String: Any] = ["bench": "mae_train_step", "lib": "medselect", "img": 128, "patch": 16, "batch": batch, "threads": threads,
                                  "enc": "192x6 h3", "dec": "128x2 h4", "mask_ratio": 0.75,
                                  "phases_median_ms": ["forward_and_loss": phaseMedians[0], "backward": phaseMedians[1], "optimizer": phaseMedians[2]],
                                  "median_ms": (med * 100).rounded() / 100, "min_ms": (times[0] * 100).rounded() / 100,
                                  "max_ms": (times[times.count - 1] * 100).rounded() / 100, "iters": iters,
                                  "isa": Layout.instructionSet, "kernels_isa": Layout.kernelInstructionSet,
                                  "images_per_s": (Double(batch) / med * 1000 * 10).rounded() / 10, "peak_rss_mb": SyntheticData.peakRSSMegabytes(),
                                  "params": model.parameters.map(\.count).reduce(0, +), "last_loss": Double(lastLoss)]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "MAE step 128x128 batch %d: median %.1f ms (min %.1f, max %.1f; %.1f images/s), peak %.0f MB", batch, med, times[0],
                         times[times.count - 1], Double(batch) / med * 1000, SyntheticData.peakRSSMegabytes()))
            print("  oneDNN ISA \(Layout.instructionSet), own kernels \(Layout.kernelInstructionSet)")
            print(String(format: "  phases (median ms): forward and loss %.1f, backward %.1f, optimizer %.1f", phaseMedians[0], phaseMedians[1], phaseMedians[2]))
        }
    }
}
