import Foundation
import Testing
import TestSupport
@testable import MedFormats
@testable import MedImage

@Suite("MetaImage")
struct MetaImageTests {
    @Test("hand-written header: LPS TransformMatrix and Offset become the RAS affine")
    func handWritten() throws {
        let s = Scratch("mha"); defer { s.cleanup() }
        // Axis 0 runs along LPS (0,-1,0) (i.e. anterior), axis 1 along LPS (1,0,0) (left), axis 2 along +S.
        let header = """
        ObjectType = Image
        NDims = 3
        BinaryData = True
        BinaryDataByteOrderMSB = True
        TransformMatrix = 0 -1 0 1 0 0 0 0 1
        Offset = 10 20 30
        ElementSpacing = 1 2 3
        DimSize = 2 3 2
        ElementType = MET_SHORT
        ElementDataFile = LOCAL

        """
        let values: [Int16] = (0..<12).map { Int16($0 * 100 - 300) }
        let data = values.flatMap { withUnsafeBytes(of: $0.bigEndian) { Array($0) } }
        let p = s.write(Array(header.utf8) + data, "a.mha")
        let img = try MetaImageReader.read(p)
        #expect(img.voxels == values.map(Float.init))
        // RAS = diag(-1,-1,1) * LPS: column 0 = (0, 1, 0)*1, column 1 = (-1, 0, 0)*2, column 2 = (0,0,1)*3; origin (-10,-20,30)
        let expected = Affine(rows: [[0, -2, 0, -10], [1, 0, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]])
        #expect(img.affine.maxAbsDifference(expected) < 1e-12)
        #expect(img.orientationCodes == "ALS")
    }

    @Test("writer round trips .mha, .mhd + .raw and compressed .zraw", arguments: ["a.mha", "b.mhd", "c.mha+z", "d.mhd+z"])
    func roundTrip(name: String) throws {
        let s = Scratch("mha"); defer { s.cleanup() }
        let compressed = name.hasSuffix("+z")
        let file = s.file(String(name.prefix { $0 != "+" }))
        let affine = Affine(rows: [[0, -0.8, 0, 10], [0.9, 0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]])
        var img = MedicalImage(shape: ImageShape(4, 3, 2), voxels: (0..<24).map { Float($0 * 11 - 50) }, affine: affine)
        img.info.storedType = .int16
        try MetaImageWriter.write(img, to: file, compressed: compressed)
        let back = try MetaImageReader.read(file)
        #expect(back.voxels == img.voxels && back.info.storedType == .int16)
        #expect(back.affine.maxAbsDifference(affine) < 1e-9)
        #expect(try MetaImageReader.readHeader(file).compressed == compressed)
    }

    @Test("bad headers and data")
    func bad() throws {
        let s = Scratch("mha"); defer { s.cleanup() }
        let base = "ObjectType = Image\nNDims = 2\nDimSize = 4 4\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
        let cases: [(String, [UInt8], (FormatError) -> Bool)] = [
            ("nodims.mha", Array("ObjectType = Image\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n".utf8), { if case .invalidHeader = $0 { return true }; return false }),
            ("type.mha", Array(base.replacingOccurrences(of: "MET_UCHAR", with: "MET_STRING").utf8) + [UInt8](repeating: 0, count: 16), { if case .unsupported = $0 { return true }; return false }),
            ("short.mha", Array(base.utf8) + [1, 2, 3], { if case .truncated = $0 { return true }; return false }),
            ("neg.mha", Array(base.replacingOccurrences(of: "4 4", with: "4 -4").utf8), { if case .invalidHeader = $0 { return true }; return false }),
            ("huge.mha", Array(base.replacingOccurrences(of: "4 4", with: "4000000 4000000").utf8), { if case .tooLarge = $0 { return true }; return false }),
            ("list.mhd", Array(base.replacingOccurrences(of: "LOCAL", with: "LIST").utf8), { if case .unsupported = $0 { return true }; return false }),
            ("zbad.mha", Array(base.replacingOccurrences(of: "ElementType", with: "CompressedData = True\nElementType").utf8) + [0x78, 0x9c, 1, 2, 3, 4, 5, 6], { if case .corrupt = $0 { return true }; return false }),
            // The error names the header the user gave, and the data file it points at.
            ("nofile.mhd", Array(base.replacingOccurrences(of: "LOCAL", with: "missing.raw").utf8), {
                if case .invalidHeader(let path, let reason) = $0 { return path.hasSuffix("nofile.mhd") && reason.contains("data file missing.raw") }
                return false
            }),
        ]
        for (name, bytes, match) in cases {
            let p = s.write(bytes, name)
            expectFormatError(p, match) { _ = try MetaImageReader.read(p) }
        }
    }
}

@Suite("NPY")
struct NPYTests {
    /// A .npy file built by hand: magic, version, header length, header dict, data.
    static func npy(_ header: String, _ data: [UInt8], major: UInt8 = 1) -> [UInt8] {
        var h = Array(header.utf8)
        let pre = major == 1 ? 10 : 12
        while (pre + h.count + 1) % 64 != 0 { h.append(0x20) }
        h.append(0x0a)
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
        if major == 1 { out += [UInt8(h.count & 0xff), UInt8(h.count >> 8)] } else { out += [UInt8(h.count & 0xff), UInt8(h.count >> 8), 0, 0] }
        return out + h + data
    }

    @Test("little-endian int16 C order, big-endian float64 Fortran order, version 2 and 3 headers")
    func hand() throws {
        let s = Scratch("npy"); defer { s.cleanup() }
        let a = try NPYReader.read(s.write(Self.npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", [1, 0, 2, 0, 3, 0, 0xff, 0xff, 5, 0, 6, 1]), "a.npy"))
        #expect(a.shape == [2, 3] && !a.fortranOrder && a.doubles() == [1, 2, 3, -1, 5, 262])
        let big: [UInt8] = [1.5, -2.25].flatMap { (v: Double) -> [UInt8] in withUnsafeBytes(of: v.bitPattern.bigEndian) { Array($0) } }
        let b = try NPYReader.read(s.write(Self.npy("{'descr': '>f8', 'fortran_order': True, 'shape': (2,), }", big, major: 2), "b.npy"))
        #expect(b.fortranOrder && b.doubles() == [1.5, -2.25])
        let c = try NPYReader.read(s.write(Self.npy("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", [7, 8, 9], major: 3), "c.npy"))
        #expect(c.doubles() == [7, 8, 9])
    }

    @Test("readMatrix (memory-mapped): float32 rows as written, int16 by hand, big-endian float64 Fortran order transposed; bad shapes and truncation refused")
    func mappedMatrix() throws {
        let s = Scratch("npy"); defer { s.cleanup() }
        let values: [Float] = (0..<12).map { Float($0) * 0.5 - 1 }
        try NPYWriter.write(matrix: values, rows: 4, columns: 3, to: s.file("m.npy"))
        let m = try NPYReader.readMatrix(s.file("m.npy"))
        #expect(m.rows == 4 && m.columns == 3 && m.values == values)
        let a = try NPYReader.readMatrix(s.write(Self.npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", [1, 0, 2, 0, 3, 0, 0xff, 0xff, 5, 0, 6, 1]), "a.npy"))
        #expect(a.rows == 2 && a.columns == 3 && a.values == [1, 2, 3, -1, 5, 262])
        // Column-major [[1, 2, 3], [4, 5, 6]] is stored 1, 4, 2, 5, 3, 6.
        let big: [UInt8] = [1, 4, 2, 5, 3, 6].flatMap { (v: Double) -> [UInt8] in withUnsafeBytes(of: v.bitPattern.bigEndian) { Array($0) } }
        let b = try NPYReader.readMatrix(s.write(Self.npy("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", big), "b.npy"))
        #expect(b.rows == 2 && b.columns == 3 && b.values == [1, 2, 3, 4, 5, 6])
        #expect(throws: FormatError.self) { try NPYReader.readMatrix(s.write(Self.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", [UInt8](repeating: 0, count: 12)), "v.npy")) }
        #expect(throws: FormatError.self) { try NPYReader.readMatrix(s.write(Self.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", [UInt8](repeating: 0, count: 20)), "t.npy")) }
        #expect(throws: FormatError.self) { try NPYReader.readMatrix(s.file("missing.npy")) }
        #expect(throws: FormatError.self) { try NPYReader.readMatrix(s.write([1, 2, 3], "tiny.npy")) }
    }

    @Test("write then read gives the same array; header is 64-byte aligned")
    func roundTrip() throws {
        let s = Scratch("npy"); defer { s.cleanup() }
        let arr = NDArray(float32: [1, 2, 3, 4, 5, 6], shape: [3, 2], fortranOrder: true)
        try NPYWriter.write(arr, to: s.file("r.npy"))
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: s.file("r.npy"))))
        #expect((bytes.count - 24) % 64 == 0)
        #expect(try NPYReader.read(s.file("r.npy")) == arr)
    }

    @Test("bad files")
    func bad() {
        let s = Scratch("npy"); defer { s.cleanup() }
        let cases: [(String, [UInt8], (FormatError) -> Bool)] = [
            ("magic.npy", Array("NOTNUMPY..........".utf8), { if case .unsupported = $0 { return true }; return false }),
            ("short.npy", Self.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }", [0, 0, 0]), { if case .truncated = $0 { return true }; return false }),
            ("struct.npy", Self.npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0]), { if case .unsupported = $0 { return true }; return false }),
            ("complex.npy", Self.npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", [UInt8](repeating: 0, count: 8)), { if case .unsupported = $0 { return true }; return false }),
            ("huge.npy", Self.npy("{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", []), { if case .tooLarge = $0 { return true }; return false }),
            ("version.npy", Array(Self.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0]).enumerated().map { $0.offset == 6 ? 9 : $0.element }), { if case .unsupported = $0 { return true }; return false }),
            ("noshape.npy", Self.npy("{'descr': '<f4', 'fortran_order': False, }", [0, 0, 0, 0]), { if case .invalidHeader = $0 { return true }; return false }),
        ]
        for (name, bytes, match) in cases {
            let p = s.write(bytes, name)
            expectFormatError(p, match) { _ = try NPYReader.read(p) }
        }
    }
}

@Suite("Format detection and conversion")
struct ImageIOTests {
    @Test("formats are recognised by content whatever the extension; foreign formats get advice")
    func detect() throws {
        let s = Scratch("io"); defer { s.cleanup() }
        let png = PNGBuilder.make(width: 2, height: 2, bitDepth: 8, colorType: 0, rows: [[1, 2], [3, 4]])
        #expect(try ImageIO.detect(s.write(png, "image.dat")) == .png)
        let b = NIfTI1Builder()
        #expect(try ImageIO.detect(s.write(b.file(data: b.int16Bytes([Int16](repeating: 0, count: 24))), "vol.bin")) == .nifti)
        let tiff = s.write([0x49, 0x49, 0x2a, 0] + [UInt8](repeating: 0, count: 100), "mask-1.tif")
        expectFormatError(tiff, { if case .unsupported(_, let r) = $0 { return r.contains("TIFF") }; return false }) { _ = try ImageIO.read(tiff) }
        let dicom = s.write([UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + [0, 0], "x.dcm")
        #expect(try ImageIO.detect(dicom) == .dicom)
        // A DICOM marker with nothing after it: refused with a reason (GDCM is never left to assert on it).
        expectFormatError(dicom, { if case .unsupported = $0 { return true }; return false }) { _ = try ImageIO.read(dicom) }
        let empty = s.write([], "empty.nii")
        expectFormatError(empty, { if case .truncated = $0 { return true }; return false }) { _ = try ImageIO.read(empty) }
    }

    @Test("NaN voxels in float NIfTI survive reading (libnifti's reader would zero them)")
    func nanPreserved() throws {
        let s = Scratch("io"); defer { s.cleanup() }
        var b = NIfTI1Builder(); b.datatype = 16; b.bitpix = 32; b.dims = [3, 2, 1, 1, 1, 1, 1, 1]
        let data: [UInt8] = [Float.nan, 2.5].flatMap { (v: Float) -> [UInt8] in withUnsafeBytes(of: v) { Array($0) } }
        let img = try NIfTIReader.read(s.write(b.file(data: data), "nan.nii"))
        #expect(img.voxels[0].isNaN && img.voxels[1] == 2.5)
    }

    @Test("conversion chain NIfTI -> MetaImage -> NIfTI -> NPY keeps values and geometry")
    func chain() throws {
        let s = Scratch("io"); defer { s.cleanup() }
        let affine = Affine(rows: [[-0.7, 0, 0, 90], [0, 0.7, 0, -100], [0, 0, 3, -40], [0, 0, 0, 1]])
        var img = MedicalImage(shape: ImageShape(6, 5, 4), voxels: (0..<120).map { Float($0 % 17) }, affine: affine)
        img.info.storedType = .int16
        try ImageIO.write(img, to: s.file("a.nii.gz"))
        try ImageIO.convert(s.file("a.nii.gz"), to: s.file("b.mha"))
        try ImageIO.convert(s.file("b.mha"), to: s.file("c.nii"))
        try ImageIO.convert(s.file("c.nii"), to: s.file("d.npy"))
        let c = try ImageIO.read(s.file("c.nii"))
        #expect(c.voxels == img.voxels && c.affine.maxAbsDifference(affine) < 1e-5)
        let d = try NPYReader.read(s.file("d.npy"))
        #expect(d.shape == [6, 5, 4] && d.fortranOrder && d.dtype == .int16 && d.floats() == img.voxels)
        expectFormatError(s.file("e.jpg"), { if case .unsupported = $0 { return true }; return false }) {
            try ImageIO.convert(s.file("c.nii"), to: s.file("e.jpg"))
        }
    }
}
