import Foundation
import MedCompute
import MedNN

/// The one work loop of every plan of items (an experiment's grid, `pick`'s stages): take a ready item (its
/// dependencies published, nobody else holding it), compute it in the ``ItemStore``, repeat until every item is
/// done. Items published earlier, by this or any worker, are reused; several workers on one store cooperate.
public enum PlanRunner {
    /// Counts of a worker's pass.
    public struct Tally: Sendable { public var computed = 0, reused = 0, total = 0 }

    public static func work(_ items: [PlanItem], store: ItemStore, pollInterval: TimeInterval = 0.5,
                            log: (String) -> Void) throws -> Tally {
        var tally = Tally(total: items.count)
        tally.reused = items.filter { store.isDone($0.stage, $0.key) }.count
        while true {
            let pending = items.filter { !store.isDone($0.stage, $0.key) }
            if pending.isEmpty { break }
            let ready = pending.filter { item in item.dependencies.allSatisfy(store.isDone) }
            var worked = false
            for item in ready where try store.claim(item.stage, item.key) {
                let done = items.count - pending.count
                log("[\(done + 1)/\(items.count)] \(item.label)")
                do {
                    try store.compute(item.stage, item.key) { folder in
                        let (cpu, wall) = (ItemCost.processCPUSeconds(), Date())
                        try item.compute(folder)
                        // A finished item is never resumed: the optimiser state kept for an exact resume (twice the
                        // checkpoint's size) goes before the item is published.
                        TrainingState.discardOptimizerState(folder: folder)
                        try ItemCost(cpuSeconds: ItemCost.processCPUSeconds() - cpu, wallSeconds: Date().timeIntervalSince(wall),
                                     threads: Compute.threads).write(to: folder)
                    }
                } catch {
                    throw ItemFailure(path: store.folder(item.stage, item.key), item: item.label, underlying: error)
                }
                tally.computed += 1
                worked = true
                break
            }
            // Everything ready is held by other workers: wait for them (or for their claims to expire).
            if !worked { Thread.sleep(forTimeInterval: pollInterval) }
        }
        return tally
    }
}
