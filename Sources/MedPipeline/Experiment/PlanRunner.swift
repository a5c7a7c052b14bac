import Foundation
import MedCompute
import MedNN

/// The one work loop of every plan of items (an experiment's grid, `pick`'s stages): take a ready item (its
/// dependencies published, nobody else holding it), compute it in the ``ItemStore``, repeat until every item is
/// done. Items published earlier, by this or any worker, are reused; several workers on one store cooperate. An item
/// carried from another machine as its record only (``ItemStore/isCarried(_:_:)``) counts as done unless an item still
/// to compute depends on it, directly or through other carried items: then it is computed again first.
public enum PlanRunner {
    /// Counts of a worker's pass.
    public struct Tally: Sendable { public var computed = 0, reused = 0, total = 0 }

    /// `costInterval`: how often an item's cost so far is kept in its work folder (``ItemCost/Meter``), for the attempt
    /// that resumes it after an interruption.
    public static func work(_ items: [PlanItem], store: ItemStore, pollInterval: TimeInterval = 0.5, costInterval: TimeInterval = 60,
                            log: (String) -> Void) throws -> Tally {
        var tally = Tally(total: items.count)
        tally.reused = items.filter { store.isDone($0.stage, $0.key) }.count
        while true {
            let pending = pendingItems(items, store: store)
            if pending.isEmpty { break }
            let usable = { (id: ItemID) in store.isDone(id) && !store.isCarried(id.stage, id.key) }
            let ready = pending.filter { item in item.dependencies.allSatisfy(usable) }
            var worked = false
            for item in ready where try store.claim(item.stage, item.key, redo: true) {
                let done = items.count - pending.count
                log("[\(done + 1)/\(items.count)] \(item.label)")
                do {
                    try store.compute(item.stage, item.key) { folder in
                        let meter = ItemCost.Meter(folder: folder, threads: Compute.threads, interval: costInterval)
                        try item.compute(folder)
                        // A finished item is never resumed: the optimiser state kept for an exact resume (twice the
                        // checkpoint's size) goes before the item is published.
                        TrainingState.discardOptimizerState(folder: folder)
                        try meter.finish()
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

    /// The items to compute: those not done, and the carried items they need (through any chain of carried items).
    public static func pendingItems(_ items: [PlanItem], store: ItemStore) -> [PlanItem] {
        var pending = Set(items.filter { !store.isDone($0.id) }.map(\.id))
        let byID = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var frontier = Array(pending)
        while let id = frontier.popLast() {
            for dependency in byID[id]?.dependencies ?? [] where store.isCarried(dependency.stage, dependency.key) {
                if pending.insert(dependency).inserted { frontier.append(dependency) }
            }
        }
        return items.filter { pending.contains($0.id) }
    }
}
