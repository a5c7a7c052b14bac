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
}
