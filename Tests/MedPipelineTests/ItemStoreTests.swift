import Foundation
import Testing
import TestSupport
@testable import MedPipeline

@Suite("Item store")
struct ItemStoreTests {
    @Test("an item published by another worker while this one computed it (a stale directory cache on NFS lets two claim it) keeps the first result and is not an error")
    func publishedMeanwhile() throws {
        let s = Scratch("items"); defer { s.cleanup() }
        let mine = ItemStore(root: s.path), theirs = ItemStore(root: s.path)
        #expect(try mine.claim("train", "k"))
        try mine.compute("train", "k") { folder in
            try Data("mine".utf8).write(to: URL(fileURLWithPath: folder + "/result.txt"))
            // Meanwhile the other worker computes and publishes the same item.
            try theirs.compute("train", "k") { other in try Data("theirs".utf8).write(to: URL(fileURLWithPath: other + "/result.txt")) }
        }
        #expect(mine.isDone("train", "k"))
        #expect(try String(contentsOfFile: s.file("train/k/result.txt"), encoding: .utf8) == "theirs")
        #expect(!FileManager.default.fileExists(atPath: s.file("train/k.work")) && !FileManager.default.fileExists(atPath: s.file("train/k.lock")))
    }

    @Test("a carried item (its record only, weights left behind) counts as done, and is computed again first when an item still to compute needs its weights, through a chain of carried items")
    func carriedItems() throws {
        let s = Scratch("carried"); defer { s.cleanup() }
        let store = ItemStore(root: s.path)
        final class Counts: @unchecked Sendable { var computed: [String: Int] = [:] }
        let counts = Counts()
        // a -> b -> c: each item writes its weights, and reads those of the item it depends on (absent weights fail).
        func item(_ name: String, after dependency: String?) -> PlanItem {
            PlanItem(id: ItemID(stage: name, key: "k"), label: name, dependencies: dependency.map { [ItemID(stage: $0, key: "k")] } ?? []) { folder in
                var weights = "\(name)"
                if let dependency { weights += "+" + (try String(contentsOfFile: store.folder(dependency, "k") + "/weights.bin", encoding: .utf8)) }
                try Data(weights.utf8).write(to: URL(fileURLWithPath: folder + "/weights.bin"))
                try Data("record of \(name)".utf8).write(to: URL(fileURLWithPath: folder + "/history.csv"))
                counts.computed[name, default: 0] += 1
            }
        }
        let plan = [item("a", after: nil), item("b", after: "a"), item("c", after: "b")]
        func carry(_ name: String) throws {
            try FileManager.default.removeItem(atPath: store.folder(name, "k") + "/weights.bin")
            try Data(#"{"left_behind": ["weights.bin"]}"#.utf8).write(to: URL(fileURLWithPath: store.folder(name, "k") + "/" + ItemStore.carriedFile))
        }
        _ = try PlanRunner.work(plan, store: store) { _ in }
        #expect(counts.computed == ["a": 1, "b": 1, "c": 1])

        try carry("a"); try carry("b")
        #expect(!(try store.claim("a", "k")) && store.isDone("a", "k") && store.isCarried("a", "k"))
        let tally = try PlanRunner.work(plan, store: store) { _ in }
        #expect(tally.computed == 0 && tally.reused == 3)
        #expect(counts.computed == ["a": 1, "b": 1, "c": 1])

        try FileManager.default.removeItem(atPath: store.folder("c", "k"))
        _ = try PlanRunner.work(plan, store: store) { _ in }
        #expect(counts.computed == ["a": 2, "b": 2, "c": 2])
        #expect(try String(contentsOfFile: store.folder("c", "k") + "/weights.bin", encoding: .utf8) == "c+b+a")
        for name in ["a", "b"] {
            #expect(!store.isCarried(name, "k") && FileManager.default.fileExists(atPath: store.folder(name, "k") + "/weights.bin"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path + "/a") == ["k"])
    }

    @Test("a carried item that nothing still to compute needs is left as it is")
    func carriedLeafStays() throws {
        let s = Scratch("carried-leaf"); defer { s.cleanup() }
        let store = ItemStore(root: s.path)
        var computed = 0
        let a = PlanItem(id: ItemID(stage: "a", key: "k"), label: "a", dependencies: []) { folder in
            computed += 1
            try Data("w".utf8).write(to: URL(fileURLWithPath: folder + "/weights.bin"))
        }
        _ = try PlanRunner.work([a], store: store) { _ in }
        try Data("{}".utf8).write(to: URL(fileURLWithPath: store.folder("a", "k") + "/" + ItemStore.carriedFile))
        _ = try PlanRunner.work([a], store: store) { _ in }
        #expect(computed == 1 && store.isCarried("a", "k"))
    }

    @Test("an item's cost.json sums the CPU time of every attempt: an interrupted attempt's share is kept in the work folder and added by the attempt that finishes it")
    func costSumsAttempts() throws {
        let s = Scratch("cost-attempts"); defer { s.cleanup() }
        let store = ItemStore(root: s.path)
        struct Interrupted: Error {}
        func burn(_ seconds: Double) {
            let start = ItemCost.processCPUSeconds()
            var x = 1.0
            while ItemCost.processCPUSeconds() - start < seconds { for _ in 0..<10_000 { x = x * 1.000001 + 1e-9 } }
            #expect(x > 0)
        }
        var attempt = 0
        let a = PlanItem(id: ItemID(stage: "a", key: "k"), label: "a", dependencies: []) { folder in
            attempt += 1
            if attempt == 1 {
                // The first attempt spends 0.4 s of CPU, lets the meter record it, and is interrupted.
                burn(0.4)
                let partial = folder + "/" + ItemCost.partialFileName
                for _ in 0..<100 where (ItemCost.read(partial)?.cpuSeconds ?? 0) < 0.4 { Thread.sleep(forTimeInterval: 0.02) }
                throw Interrupted()
            }
            burn(0.2)
        }
        #expect(throws: ItemFailure.self) { _ = try PlanRunner.work([a], store: store, costInterval: 0.05) { _ in } }
        #expect(!store.isDone("a", "k"))
        _ = try PlanRunner.work([a], store: store, costInterval: 0.05) { _ in }
        let cost = try #require(ItemCost.read(store.folder("a", "k") + "/" + ItemCost.fileName))
        #expect(attempt == 2 && cost.attempts == 2)
        #expect(cost.cpuSeconds >= 0.6, "both attempts' CPU time: \(cost.cpuSeconds)")
        #expect(!FileManager.default.fileExists(atPath: store.folder("a", "k") + "/" + ItemCost.partialFileName))
    }
}
