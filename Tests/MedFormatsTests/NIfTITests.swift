import Foundation
import Testing
import TestSupport
@testable import MedFormats
@testable import MedImage

/// Expects `body` to throw a FormatError matching `matches`, naming the path.
func expectFormatError(_ path: String, _ matches: (FormatError) -> Bool, _ body: () throws -> Void,
                       sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected an error for \(path)", sourceLocation: sourceLocation)
    } catch let e as FormatError {
        #expect(matches(e), "unexpected error: \(e)", sourceLocation: sourceLocation)
        #expect(e.description.contains(URL(fileURLWithPath: e.path).lastPathComponent), sourceLocation: sourceLocation)
        #expect(!e.description.contains("\n"), sourceLocation: sourceLocation)
    } catch {
        Issue.record("non-format error \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("NIfTI reading of hand-built files")
struct NIfTIHandBuiltTests {
    let values: [Int16] = (0..<24).map { Int16($0 * 3 - 20) }

    @Test("int16 little- and big-endian give the same values", arguments: [false, true])
    func endianness(big: Bool) throws {
        let s = Scratch("nii"); defer { s.cleanup() }
        var b = NIfTI1Builder(); b.bigEndian = big
        let p = s.write(b.file(data: b.int16Bytes(values)), "a.nii")
        let img = try NIfTIReader.read(p)
        #expect(img.shape == ImageShape(2, 3, 4))
        #expect(img.voxels == values.map(Float.init))
        #expect(img.info.storedType == .int16)
    }

    @Test("scl_slope and scl_inter are applied; slope 0 or NaN means unscaled")
    func scaling() throws {
        let s = Scratch("nii"); defer { s.cleanup() }
        var b = NIfTI1Builder(); b.slope = 2; b.inter = -1
        let p = s.write(b.file(data: b.int16Bytes(values)), "s.nii")
        #expect(try NIfTIReader.read(p).voxels == values.map { Float($0) * 2 - 1 })
        let arr = try NIfTIReader.readArray(p)
        #expect(arr.dtype == .float64 && arr.doubles() == values.map { Double($0) * 2 - 1 })
        for slope in [Float(0), .nan] {
            b.slope = slope; b.inter = 5
            let q = s.write(b.file(data: b.int16Bytes(values)), "u.nii")
            #expect(try NIfTIReader.read(q).voxels == values.map(Float.init))
            #expect(try NIfTIReader.readArray(q).dtype == .int16)
        }
    }

    @Test("no qform or sform: NiBabel's base affine (x flipped, centred)")
    func baseAffine() throws {
        let s = Scratch("nii"); defer { s.cleanup() }
        var b = NIfTI1Builder(); b.pixdim = [1, 0.5, 2, 3, 1, 1, 1, 1]
        let p = s.write(b.file(data: b.int16Bytes(values)), "b.nii")
        let a = try NIfTIReader.read(p).affine
        // shape (2,3,4): origin = -((shape-1)/2) * zooms with zooms (-0.5, 2, 3) -> (0.25, -2, -4.5)
        let expected = Affine(rows: [[-0.5, 0, 0, 0.25], [0, 2, 0, -2], [0, 0, 3, -4.5], [0, 0, 0, 1]])
        #expect(a.maxAbsDifference(expected) < 1e-9)
    }

    @Test("qform only: quaternion of a 90 degree turn about z, with qfac -1")
    func qform() throws {
        let s = Scratch("nii"); defer { s.cleanup() }
        var b = NIfTI1Builder()
        b.qformCode = 1
        b.quatern = [0, 0, Float(0.5.squareRoot())]     // b, c, d: 90 degrees about z (a = sqrt(0.5))
        b.qoffset = [10, 20, 30]
        b.pixdim = [-1, 2, 3, 4, 1, 1, 1, 1]            // qfac = -1 flips k
        let p = s.write(b.file(data: b.int16Bytes(values)), "q.nii")
        let a = try NIfTIReader.read(p).affine
        // R = [[0,-1,0],[1,0,0],[0,0,1]]; columns scaled by (2, 3, -4)
        let expected = Affine(rows: [[0, -3, 0, 10], [2, 0, 0, 20], [0, 0, -4, 30], [0, 0, 0, 1]])
        #expect(a.maxAbsDifference(expected) < 1e-5)
    }

    @Test("sform wins over qform; metres become millimetres")
    func sformUnits() throws {
        let s = Scratch("nii"); defer { s.cleanup() }
        var b = NIfTI1Builder()
        b.qformCode = 1; b.sformCode = 2
        b.srow = [[0.001, 0, 0, 0.01], [0, 0.002, 0, 0.02], [0, 0, 0.003, 0.03]]
        b.xyztUnits = 1 // metres
        let p = s.write(b.file(data: b.int16Bytes(values)), "m.nii")
        let a = try NIfTIReader.read(p).affine
        let expected = Affine(rows: [[1, 0, 0, 10], [0, 2, 0, 20], [0, 0, 3, 30], [0, 0, 0, 1]])
        #expect(a.maxAbsDifference(expected) < 1e-4)
    }

    @Test("hdr/img pair and gzip give the same image")
    func pairAndGzip() throws {
        let s = Scratch("nii"); defer { s.cleanup() }
        var b = NIfTI1Builder()
        let single = s.write(b.file(data: b.int16Bytes(values)), "a.nii")
        gzipCompress(b.file(data: b.int16Bytes(values)), path: s.file("g.nii.gz"))
        b.magic = [0x6e, 0x69, 0x31, 0]; b.voxOffset = 0
        _ = s.write(b.header() + [0, 0, 0, 0], "p.hdr")
        _ = s.write(b.int16Bytes(values), "p.img")
        let a = try NIfTIReader.read(single)
        #expect(try NIfTIReader.read(s.file("g.nii.gz")).voxels == a.voxels)
        #expect(try NIfTIReader.read(s.file("p.hdr")).voxels == a.voxels)
        #expect(try NIfTIReader.read(s.file("p.img")).voxels == a.voxels)
        #expect(try NIfTIReader.readHeader(s.file("p.hdr")).isPair)
        #expect(try NIfTIReader.readHeader(s.file("g.nii.gz")).isCompressed)
    }
}

@Suite("NIfTI bad input")
struct NIfTIBadInputTests {
    let b = NIfTI1Builder()
    var good: [UInt8] { b.file(data: b.int16Bytes([Int16](repeating: 1, count: 24))) }

    @Test func truncatedData() {
        let s = Scratch("bad"); defer { s.cleanup() }
        let p = s.write(Array(good.dropLast(10)), "t.nii")
        expectFormatError(p, { if case .truncated = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
    }

    @Test func truncatedHeader() {
        let s = Scratch("bad"); defer { s.cleanup() }
        let p = s.write(Array(good.prefix(100)), "h.nii")
        expectFormatError(p, { if case .truncated = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
    }

    @Test func wrongMagic() {
        let s = Scratch("bad"); defer { s.cleanup() }
        var bytes = good; bytes[345] = 0x58
        let p = s.write(bytes, "m.nii")
        expectFormatError(p, { if case .invalidHeader = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
    }

    @Test func wrongSizeofHdr() {
        let s = Scratch("bad"); defer { s.cleanup() }
        var bytes = good; bytes[0] = 0x10
        let p = s.write(bytes, "z.nii")
        expectFormatError(p, { if case .invalidHeader = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
    }

    @Test("header dimensions beyond the memory limit fail before allocation")
    func hugeDimensions() {
        let s = Scratch("bad"); defer { s.cleanup() }
        var h = b; h.dims = [4, 32000, 32000, 32000, 100, 1, 1, 1]; h.datatype = 64; h.bitpix = 64
        let p = s.write(h.file(data: [1, 2, 3]), "huge.nii")
        expectFormatError(p, { if case .tooLarge = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
        // and a configurable limit applies to small images too
        let q = s.write(good, "small.nii")
        expectFormatError(q, { if case .tooLarge = $0 { return true }; return false }) {
            _ = try NIfTIReader.read(q, options: ReadOptions(maxBytes: 16))
        }
    }

    @Test("zero, negative and out-of-range dimensions", arguments: [
        [Int16(3), 0, 3, 4, 1, 1, 1, 1], [3, 2, -3, 4, 1, 1, 1, 1], [9, 2, 3, 4, 1, 1, 1, 1], [0, 2, 3, 4, 1, 1, 1, 1],
    ])
    func badDims(dims: [Int16]) {
        let s = Scratch("bad"); defer { s.cleanup() }
        var h = b; h.dims = dims
        let p = s.write(h.file(data: [UInt8](repeating: 0, count: 48)), "d.nii")
        expectFormatError(p, { if case .invalidHeader = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
    }

    @Test("vox_offset inside the header, not a number, or beyond any file (fuzzer find)", arguments: [Float(100), -5, .nan, .infinity, 1e30])
    func badOffset(offset: Float) {
        let s = Scratch("bad"); defer { s.cleanup() }
        var h = b; h.voxOffset = offset
        let p = s.write(h.header() + [UInt8](repeating: 0, count: 100), "o.nii")
        expectFormatError(p, { if case .invalidHeader = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
    }

    @Test func unsupportedDatatype() {
        let s = Scratch("bad"); defer { s.cleanup() }
        var h = b; h.datatype = 32; h.bitpix = 64  // complex64
        let p = s.write(h.file(data: [UInt8](repeating: 0, count: 192)), "c.nii")
        expectFormatError(p, { if case .unsupported(_, let r) = $0 { return r.contains("complex64") }; return false }) {
            _ = try NIfTIReader.read(p)
        }
    }

    @Test("a damaged gzip stream is reported, not read as zeros")
    func corruptGzip() throws {
        let s = Scratch("bad"); defer { s.cleanup() }
        var h = b; h.dims = [3, 64, 64, 16, 1, 1, 1, 1]
        let values = (0..<(64 * 64 * 16)).map { Int16(truncatingIfNeeded: $0 &* 7919) }
        gzipCompress(h.file(data: h.int16Bytes(values)), path: s.file("ok.nii.gz"))
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: s.file("ok.nii.gz"))))
        for i in stride(from: bytes.count / 2, to: bytes.count / 2 + 64, by: 1) { bytes[i] ^= 0x5a }
        let p = s.write(bytes, "bad.nii.gz")
        expectFormatError(p, { if case .corrupt = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
        let t = s.write(Array(bytes.prefix(bytes.count / 2)), "cut.nii.gz")
        expectFormatError(t, { if case .corrupt = $0 { return true }; return false }) { _ = try NIfTIReader.read(t) }
    }

    @Test func missingFileAndFolder() {
        let s = Scratch("bad"); defer { s.cleanup() }
        let p = s.file("nothing.nii")
        expectFormatError(p, { if case .notFound = $0 { return true }; return false }) { _ = try NIfTIReader.read(p) }
        expectFormatError(s.path, { if case .unreadable = $0 { return true }; return false }) { _ = try ImageIO.read(s.path) }
        _ = s.write(b.header(), "lonely.hdr")
        expectFormatError(s.file("lonely.hdr"), { if case .notFound = $0 { return true }; return false }) {
            var h = b; h.magic = [0x6e, 0x69, 0x31, 0]
            _ = s.write(h.header(), "lonely.hdr")
            _ = try NIfTIReader.read(s.file("lonely.hdr"))
        }
    }
}

@Suite("NIfTI writer round trips")
struct NIfTIWriterTests {
    static let affine = Affine(rows: [[0, -0.8, 0.1, 10], [0.9, 0, 0, -20], [0, 0.05, 2.5, 5], [0, 0, 0, 1]])

    @Test("every layout and type reads back the same voxels and affine", arguments: [
        ("a.nii", VoxelType.float32), ("a.nii.gz", .int16), ("a.hdr", .uint8), ("a.hdr.gz", .float32),
        ("b.nii", .float64), ("b.nii.gz", .int32), ("c.nii", .uint16), ("c.nii.gz", .int8),
    ])
    func roundTrip(name: String, type: VoxelType) throws {
        let s = Scratch("w"); defer { s.cleanup() }
        let shape = ImageShape(5, 4, 3)
        let voxels = (0..<shape.count).map { Float(($0 * 37) % 120) }
        let img = MedicalImage(shape: shape, voxels: voxels, affine: Self.affine)
        let p = s.file(name)
        try NIfTIWriter.write(img, to: p, options: .init(storedType: type))
        let back = try NIfTIReader.read(p)
        #expect(back.voxels == voxels)
        #expect(back.info.storedType == type)
        #expect(back.affine.maxAbsDifference(Self.affine) < 1e-5)
        #expect(!s.entries.contains { $0.hasPrefix(".tmp") })
        let h = try NIfTIReader.readHeader(p)
        #expect(h.qformCode > 0 && h.sformCode > 0)
    }

    @Test("NIfTI-2, 4-D, RGB and label maps")
    func variants() throws {
        let s = Scratch("w"); defer { s.cleanup() }
        let four = MedicalImage(shape: ImageShape(3, 2, 2, 4), voxels: (0..<48).map(Float.init))
        try NIfTIWriter.write(four, to: s.file("v2.nii"), options: .init(version: 2))
        #expect(try NIfTIReader.readHeader(s.file("v2.nii")).version == 2)
        #expect(try NIfTIReader.read(s.file("v2.nii")).voxels == four.voxels)
        #expect(try NIfTIReader.read(s.file("v2.nii")).shape == ImageShape(3, 2, 2, 4))

        var rgb = MedicalImage(shape: ImageShape(4, 3, 1, 3), voxels: (0..<36).map { Float($0 * 7 % 256) })
        rgb.info.components = .color
        rgb.info.storedType = .uint8
        try NIfTIWriter.write(rgb, to: s.file("rgb.nii"))
        let back = try NIfTIReader.read(s.file("rgb.nii"))
        #expect(back.info.storedType == .rgb24 && back.voxels == rgb.voxels)

        let labels = MedicalImage(shape: ImageShape(3, 3), voxels: [0, 1, 2, 0, 300, 2, 1, 1, 0], kind: .labelMap)
        try NIfTIWriter.write(labels, to: s.file("lab.nii.gz"))
        #expect(try NIfTIReader.readHeader(s.file("lab.nii.gz")).storedType == .int16)
        #expect(try NIfTIReader.read(s.file("lab.nii.gz")).voxels == labels.voxels)
    }

    @Test("values that do not fit the type are refused and nothing is written")
    func refuses() {
        let s = Scratch("w"); defer { s.cleanup() }
        let img = MedicalImage(shape: ImageShape(2, 1), voxels: [1, 70000])
        expectFormatError(s.file("x.nii"), { if case .cannotRepresent = $0 { return true }; return false }) {
            try NIfTIWriter.write(img, to: s.file("x.nii"), options: .init(storedType: .int16))
        }
        #expect(s.entries.isEmpty)
        expectFormatError(s.file("no/x.nii"), { if case .writeFailed = $0 { return true }; return false }) {
            try NIfTIWriter.write(img, to: s.file("no/x.nii"))
        }
    }
}

@Suite("Fuzzer finds stay fixed")
struct FuzzRegressionTests {
    /// Inputs that crashed a reader under Scripts/fuzz; each must now fail with a FormatError.
    static var fixtures: [String] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().map { dir.appendingPathComponent($0).path }
    }

    @Test("every recorded crash input is a clean error")
    func replay() throws {
        #expect(!Self.fixtures.isEmpty)
        for path in Self.fixtures {
            let options = ReadOptions(maxBytes: 64 << 20)
            #expect(throws: FormatError.self, "\(path)") { _ = try ImageIO.read(path, options: options) }
        }
    }

    /// DICOM files of a few KB whose elements or pixel data fragments claim gigabytes: GDCM allocated the claimed
    /// length (2.1 to 13 GB, 8 to 55 s) before failing; the shim now refuses them from the lengths alone, before GDCM
    /// reads them.
    @Test("DICOM elements longer than the file are refused before GDCM allocates them")
    func hugeDICOMLengths() throws {
        for name in ["dicom-huge-length-implicit.dcm", "dicom-huge-length-in-sequence.dcm", "dicom-garbled-rle-fragments.dcm", "dicom-pixel-data-4gb-length.dcm"] {
            let path = Self.fixtures.first { $0.hasSuffix(name) }!
            #expect(throws: FormatError.self) { _ = try ImageIO.read(path) }
            do { _ = try DICOMReader.readHeader(path); Issue.record("\(name) was read") } catch let e as FormatError {
                #expect(e.reason.contains("runs past the end of the file"), "\(e.reason)")
            }
        }
    }
}
