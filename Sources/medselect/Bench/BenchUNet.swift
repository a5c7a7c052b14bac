import ArgumentParser
import Foundation
import MedCompute
import MedNN
import MedTensor
import MedFoundation

/// Times U-Net training steps (forward, Dice+CE, backward, Adam), as Scripts/reference/torch_unet_step.py does.
struct BenchUNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "Time U-Net training steps (batch, size, threads) against the PyTorch reference's configuration.",
        discussion: "Example: medselect bench unet --size 128 --batch 8 --json"
    )
    @Option(help: "Image side in pixels.") var size = 128
    @Option(help: "Batch size.") var batch = 8
    @Option(help: "Timed steps.") var iters = 5
    @Option(help: "Untimed steps first.") var warmup = 1
    @Option(help: "Threads (oneDNN and MedSelect's kernels).") var threads = 2
    @Flag(help: "One JSON object.") var json = false
    @Option(help: "Save the weights after the timed steps (safetensors).") var save: String?

    func run() throws {
        guard size >= 16, size % 16 == 0, batch >= 1, iters >= 1 else { throw ValidationError("size must be a multiple of 16; batch and iters >= 1") }
        setenv("OPENBLAS_NUM_THREADS", String(threads), 1)
        Compute.threads = threads
        let model = UNet(seed: 0)
        var rng = SplitMix64(seed: 1)
        let x = Tensor(randomNormal: [batch, 1, size, size], generator: &rng)
        let labels = (0..<(batch * size * size)).map { _ in Float.random(in: 0..<1, using: &rng) > 0.7 ? Float(1) : 0 }
        var opt = Adam(model.parameters, learningRate: 1e-3)
        var lastLoss: Float = 0
        // Phases: forward, loss, backward, optimiser.
        func step(_ lap: () -> Void) throws {
            opt.zeroGrad()
            let logits = try model(x)
            lap()
            let loss = try Loss.diceCE(logits, labels)
            lap()
            loss.backward()
            lap()
            opt.step()
            lap()
            lastLoss = loss.item
        }
        for _ in 0..<warmup { try step {} }
        let reordersBefore = activationReorders
        let timing = try PhasedSteps(iterations: iters, warmup: 0, step)
        let reordersPerStep = Double(activationReorders - reordersBefore) / Double(iters)
        let phaseMedians = (0..<4).map(timing.phaseMedian)
        if let save { try ModelFile.write(model, description: ModelDescription(unet: model.configuration), to: save) }
        let (median, times) = (timing.median, timing.times)
        let obj: [String: Any] = ["bench": "unet_train_step", "lib": "medselect", "size": size, "batch": batch, "threads": threads,
                                  "phases_median_ms": ["forward": phaseMedians[0], "loss": phaseMedians[1], "backward": phaseMedians[2],
                                                       "optimizer": phaseMedians[3]],
                                  "median_ms": (median * 100).rounded() / 100, "min_ms": (times[0] * 100).rounded() / 100,
                                  "max_ms": (times[times.count - 1] * 100).rounded() / 100, "iters": iters,
                                  "isa": Layout.instructionSet, "kernels_isa": Layout.kernelInstructionSet, "block": Layout.native.block, "activation_reorders_per_step": reordersPerStep,
                                  "images_per_s": (Double(batch) / median * 1000 * 100).rounded() / 100, "peak_rss_mb": SyntheticData.peakRSSMegabytes(),
                                  "params": model.parameters.map(\.count).reduce(0, +), "last_loss": Double(lastLoss)]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "U-Net step %dx%d batch %d: median %.1f ms (min %.1f, max %.1f; %.1f images/s), peak %.0f MB", size, size,
                         batch, median, times[0], times[times.count - 1], Double(batch) / median * 1000, SyntheticData.peakRSSMegabytes()))
            print("  oneDNN ISA \(Layout.instructionSet), own kernels \(Layout.kernelInstructionSet), activations in \(Layout.native) (block \(Layout.native.block)), "
                  + String(format: "%.1f activation conversions per step", reordersPerStep))
            print(String(format: "  phases (median ms): forward %.1f, loss %.1f, backward %.1f, optimizer %.1f", phaseMedians[0],
                         phaseMedians[1], phaseMedians[2], phaseMedians[3]))
        }
    }
}
