import Foundation
import Testing
import TestSupport

/// Runs the built `medselect` binary (next to the test bundle in the build folder).
struct Tool {
    static var binary: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        var dir = bundle.deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("medselect").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("medselect").path
    }

    /// Runs the tool with `args`; `environment` entries are added to (or replace) the test's own environment, and an
    /// empty value removes the variable.
    static func run(_ args: [String], environment: [String: String] = [:], directory: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { !$0.value.isEmpty } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Starts the tool with `args`, kills it (SIGKILL) as soon as its standard error contains `marker`, and returns
    /// what it printed and whether the kill, not the end of the run, stopped it.
    static func runKilled(_ args: [String], after marker: String, environment: [String: String] = [:]) throws -> (killed: Bool, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { !$0.value.isEmpty } }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        var seen = ""
        while !seen.contains(marker) {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        return (p.terminationReason == .uncaughtSignal, seen)
    }
}

@Suite("medselect command line")
struct CLITests {
    func sample(_ s: Scratch) -> String {
        var b = NIfTI1Builder()
        b.sformCode = 1
        b.srow = [[-0.5, 0, 0, 30], [0, -0.5, 0, 40], [0, 0, 3, -10]]
        return s.write(b.file(data: b.int16Bytes((0..<24).map { Int16($0) })), "vol.nii")
    }

    @Test("inspect --json reports format, datatype, shape, spacing, affine and orientation")
    func inspectJSON() throws {
        let s = Scratch("cli"); defer { s.cleanup() }
        let r = try Tool.run(["inspect", sample(s), "--json"])
        #expect(r.status == 0)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["format"] as? String == "nifti1")
        #expect(obj["datatype"] as? String == "int16")
        #expect(obj["shape"] as? [Int] == [2, 3, 4])
        #expect(obj["spacing"] as? [Double] == [0.5, 0.5, 3])
        #expect(obj["orientation"] as? String == "LPS")
        let affine = try #require(obj["affine"] as? [[Double]])
        #expect(affine[0] == [-0.5, 0, 0, 30] && affine[2] == [0, 0, 3, -10])
        #expect(obj["max"] as? Double == 23)
    }

    @Test("inspect without --json prints a readable summary")
    func inspectText() throws {
        let s = Scratch("cli"); defer { s.cleanup() }
        let r = try Tool.run(["inspect", sample(s)])
        #expect(r.status == 0 && r.stdout.contains("orientation:  LPS") && r.stdout.contains("2 x 3 x 4"))
    }

    @Test("convert writes by extension and round-trips")
    func convert() throws {
        let s = Scratch("cli"); defer { s.cleanup() }
        let src = sample(s)
        #expect(try Tool.run(["convert", src, s.file("v.mha")]).status == 0)
        #expect(try Tool.run(["convert", s.file("v.mha"), s.file("v.nii.gz"), "--type", "float32"]).status == 0)
        let r = try Tool.run(["inspect", s.file("v.nii.gz"), "--json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["datatype"] as? String == "float32" && obj["orientation"] as? String == "LPS")
    }

    @Test("bad input: one line `error: <path>: <reason>`, exit 1, no output file", arguments: [
        "missing", "truncated", "text", "folder",
    ])
    func errors(kind: String) throws {
        let s = Scratch("cli"); defer { s.cleanup() }
        let path: String
        switch kind {
        case "missing": path = s.file("nope.nii.gz")
        case "truncated": path = s.write(Array(try [UInt8](Data(contentsOf: URL(fileURLWithPath: sample(s)))).prefix(300)), "cut.nii")
        case "text": path = s.write(Array("just text\n".utf8), "notes.png")
        default: path = s.path
        }
        for args in [["inspect", path], ["convert", path, s.file("out.nii")]] {
            let r = try Tool.run(args)
            #expect(r.status == 1)
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1)
            #expect(lines.first?.hasPrefix("error: \(path): ") == true, "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: s.file("out.nii")))
        }
    }

    @Test("bad options are refused with a usage message")
    func badOptions() throws {
        let s = Scratch("cli"); defer { s.cleanup() }
        let r = try Tool.run(["convert", sample(s), s.file("x.nii"), "--type", "complex"])
        #expect(r.status != 0 && r.stderr.contains("--type"))
        let m = try Tool.run(["inspect", sample(s), "--max-memory", "0"])
        #expect(m.status != 0)
        let limited = try Tool.run(["inspect", sample(s), "--max-memory", "1"])
        #expect(limited.status == 0)
    }
}
