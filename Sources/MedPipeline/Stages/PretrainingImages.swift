import Foundation
import MedCompute
import Synchronization
import MedData
import MedFormats
import MedNN

/// The pretraining stage's input: every slice of the cases (2-D images, or evenly spaced axial slices of volumes),
/// resampled and z-scored as `Sample.slices` prepares them, as one in-memory stack.
public enum PretrainingImages {
    /// The slices of `samples` in case order, read in parallel; `progress(done, total)` after each case.
    public static func read(_ samples: [Sample], size: Int, maxSlices: Int, options: ReadOptions,
                            progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) throws -> ImageStack {
        try read(samples, size: size, maxSlices: maxSlices, gray: false, options: options, progress: progress).stack
    }

    /// As ``read(_:size:maxSlices:options:progress:)``, optionally converting every slice to one gray channel
    /// (``ImageSlices/grayscale()``: datasets of gray and colour images pretrained together), with the number of
    /// slices each case gave (case i's slices follow case i − 1's).
    public static func read(_ samples: [Sample], size: Int, maxSlices: Int, gray: Bool, options: ReadOptions,
                            progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) throws -> (stack: ImageStack, slicesPerCase: [Int]) {
        let results = Mutex([Int: Result<ImageSlices, Error>]())
        let done = Atomic<Int>(0)
        parallelFor(samples.count) { i in
            let r = Result { () -> ImageSlices in
                let s = try samples[i].slices(size: size, maxSlices: maxSlices, options: options)
                return gray ? s.grayscale() : s
            }
            results.withLock { $0[i] = r }
            progress(done.add(1, ordering: .relaxed).newValue, samples.count)
        }
        var values: [Float] = [], count = 0, channels = 0, perCase: [Int] = []
        let byIndex = results.withLock { $0 }
        for (i, s) in samples.enumerated() {
            let slices = try byIndex[i]!.get()
            if channels == 0 { channels = slices.channels }
            guard slices.channels == channels else {
                throw DataError.badDataset(path: s.images[0], reason: "\(slices.channels) channel(s); earlier cases have \(channels)")
            }
            values += slices.values
            count += slices.count
            perCase.append(slices.count)
        }
        return (ImageStack(values: values, count: count, channels: max(1, channels), size: size), perCase)
    }

    /// HSSL's input: every case's slices in one gray channel, each slice labelled with its case's domain (the domain's
    /// position in `names`, which must hold every domain given).
    public static func readDomains(_ samples: [Sample], domains caseDomains: [String], names: [String], size: Int, maxSlices: Int, options: ReadOptions,
                                   progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) throws -> (stack: ImageStack, labels: [Int]) {
        precondition(samples.count == caseDomains.count, "one domain per case")
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        let (stack, perCase) = try read(samples, size: size, maxSlices: maxSlices, gray: true, options: options, progress: progress)
        return (stack, zip(caseDomains, perCase).flatMap { [Int](repeating: index[$0.0]!, count: $0.1) })
    }
}
