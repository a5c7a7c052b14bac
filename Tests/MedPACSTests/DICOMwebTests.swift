import Foundation
import Testing
@testable import MedPACS

/// The PACS answers' parsers against hand-written answers (RFC 2046 multipart bodies, PS3.18 DICOM JSON), and the
/// client's refusals of what must not be used. The conversation with a real PACS is Tests/Conformance/test_dicomweb.py.
@Suite struct DICOMwebTests {
    static func body(_ parts: [(headers: String, bytes: [UInt8])], boundary: String, preamble: String = "", close: Bool = true) -> [UInt8] {
        var b = Array(preamble.utf8)
        for p in parts { b += Array("--\(boundary)\r\n\(p.headers)\r\n".utf8) + p.bytes + Array("\r\n".utf8) }
        if close { b += Array("--\(boundary)--\r\n".utf8) }
        return b
    }

    @Test func boundaryFromContentType() {
        #expect(Multipart.boundary(contentType: "multipart/related; type=\"application/dicom\"; boundary=abc123") == "abc123")
        #expect(Multipart.boundary(contentType: "Multipart/Related;boundary=\"q u o\";type=application/dicom") == "q u o")
        #expect(Multipart.boundary(contentType: "application/dicom") == nil)
        #expect(Multipart.boundary(contentType: "multipart/related; type=application/dicom") == nil)
        #expect(Multipart.boundary(contentType: "multipart/related; boundary=" + String(repeating: "x", count: 71)) == nil)
    }

    @Test func partsAreCutExactlyAtTheirBoundaries() throws {
        // Bodies holding CR LF, "--" and a near-boundary: only the real delimiter ends a part.
        let a: [UInt8] = Array("DICM\r\n--bound\r\nnot yet".utf8) + [0, 255, 13, 10]
        let b: [UInt8] = []
        let c: [UInt8] = Array(repeating: 0x2D, count: 5)
        let raw = Self.body([("Content-Type: application/dicom\r\nContent-Length: 99\r\n", a), ("", b), ("X-Note:  spaced  \r\n", c)],
                            boundary: "boundary", preamble: "ignored preamble\r\n")
        let parts = try Multipart.parts(raw, boundary: "boundary")
        #expect(parts.map(\.body) == [a, b, c])
        #expect(parts[0].headers["content-type"] == "application/dicom" && parts[0].headers["content-length"] == "99")
        #expect(parts[1].headers.isEmpty && parts[2].headers["x-note"] == "spaced")
    }

    @Test func truncatedBodiesAreRefused() throws {
        let raw = Self.body([("Content-Type: application/dicom\r\n", Array(repeating: 7, count: 300))], boundary: "zz")
        #expect(try Multipart.parts(raw, boundary: "zz").count == 1)
        // Every cut before the closing delimiter is an error, never a shorter part.
        let closing = raw.count - "--zz--\r\n".count
        for cut in [0, 3, 20, 40, 200, closing - 2, closing + 3] {
            #expect(throws: PACSFailure.self) { try Multipart.parts(Array(raw.prefix(cut)), boundary: "zz") }
        }
        #expect(throws: PACSFailure.self) { try Multipart.parts(Array("no delimiter at all".utf8), boundary: "zz") }
    }

    @Test func seriesFromDICOMJSON() throws {
        let json = """
        [{"0020000D": {"vr": "UI", "Value": ["1.2.840.1"]}, "0020000E": {"vr": "UI", "Value": ["1.2.840.1.2"]},
          "00080060": {"vr": "CS", "Value": ["MR"]}, "0008103E": {"vr": "LO", "Value": ["T2 AX "]},
          "00200011": {"vr": "IS", "Value": [3]}, "00201209": {"vr": "IS", "Value": ["24"]},
          "00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]}},
         {"0020000d": {"vr": "UI", "Value": ["1.3"]}, "0020000e": {"vr": "UI", "Value": ["1.3.1"]}}]
        """
        let s = try QIDO.series(Array(json.utf8))
        #expect(s == [QIDO.Series(studyUID: "1.2.840.1", seriesUID: "1.2.840.1.2", modality: "MR", description: "T2 AX", number: 3, instances: 24),
                      QIDO.Series(studyUID: "1.3", seriesUID: "1.3.1", modality: nil, description: nil, number: nil, instances: nil)])
        #expect(try QIDO.series(Array("  \n".utf8)).isEmpty)   // 204 No Content
        #expect(try QIDO.instances(Array(#"[{"00080018": {"vr": "UI", "Value": ["1.2.3.4"]}}]"#.utf8)) == ["1.2.3.4"])
    }

    @Test func answersThatCannotBeUsedAreRefused() {
        for bad in [#"{"not": "an array"}"#, "[1, 2]", "<html>", #"[{"0020000E": {"vr": "UI", "Value": ["1.2"]}}]"#,
                    #"[{"0020000D": {"vr": "UI", "Value": ["../../etc"]}, "0020000E": {"vr": "UI", "Value": ["1.2"]}}]"#,
                    #"[{"0020000D": {"vr": "UI", "Value": ["1.2"]}, "0020000E": {"vr": "UI", "Value": ["1..2"]}}]"#] {
            #expect(throws: PACSFailure.self) { try QIDO.series(Array(bad.utf8)) }
        }
        #expect(throws: PACSFailure.self) { try QIDO.uid(String(repeating: "1", count: 65)) }
        #expect(throws: PACSFailure.self) { try QIDO.uid("1.2/3") }
        #expect((try? QIDO.uid("1.2.840.10008.1.2.1")) == "1.2.840.10008.1.2.1")
    }

    @Test func credentialsOnlyFromTheEnvironment() throws {
        #expect(throws: PACSFailure.self) { try DICOMwebClient("http://user:secret@pacs:8042/dicom-web", environment: [:]) }
        #expect(throws: PACSFailure.self) { try DICOMwebClient("ftp://pacs/dicom-web", environment: [:]) }
        #expect(throws: PACSFailure.self) { try DICOMwebClient("pacs/dicom-web", environment: [:]) }
        #expect(try DICOMwebClient("http://pacs:8042/dicom-web/", environment: [:]).auth == .none)
        #expect(try DICOMwebClient("http://pacs/dw", environment: ["MEDSELECT_DICOMWEB_USER": "u", "MEDSELECT_DICOMWEB_PASSWORD": "p"]).auth == .basic(user: "u", password: "p"))
        #expect(try DICOMwebClient("https://pacs/dw", environment: ["MEDSELECT_DICOMWEB_TOKEN": "t", "MEDSELECT_DICOMWEB_USER": "u"]).auth == .bearer("t"))
        let c = try DICOMwebClient("http://pacs:8042/dicom-web/", environment: [:])
        #expect(c.url("series", query: [("StudyDate", "20240101-20241231"), ("PatientName", "DOE^J+")]).absoluteString
                == "http://pacs:8042/dicom-web/series?StudyDate=20240101-20241231&PatientName=DOE%5EJ%2B")
    }

    @Test func searchFilters() throws {
        #expect(try DICOMwebCache.filters(["Modality=MR", "00080070=SIEMENS=X"]).map { "\($0.0)|\($0.1)" } == ["Modality|MR", "00080070|SIEMENS=X"])
        #expect(throws: PACSFailure.self) { try DICOMwebCache.filters(["Modality"]) }
        #expect(throws: PACSFailure.self) { try DICOMwebCache.filters(["offset=5"]) }
    }
}
