import Foundation
import MedFoundation

/// What a PACS answers to a QIDO-RS search, in the DICOM JSON model (PS3.18 F.2: an array of objects keyed by tag,
/// each `{"vr": ..., "Value": [...]}`), reduced to what retrieval needs: UIDs and a few descriptive attributes. Patient
/// attributes in the answer are never read.
public enum QIDO {
    /// One series found by a search.
    public struct Series: Sendable, Equatable, Codable {
        public var studyUID: String
        public var seriesUID: String
        public var modality: String?
        public var description: String?
        public var number: Int?
        /// NumberOfSeriesRelatedInstances when the PACS gives it.
        public var instances: Int?
    }

    /// The attributes asked for with `includefield` (StudyInstanceUID, SeriesInstanceUID, Modality,
    /// SeriesDescription, SeriesNumber, NumberOfSeriesRelatedInstances).
    public static let seriesFields = ["0020000D", "0020000E", "00080060", "0008103E", "00200011", "00201209"]

    /// The series of a series-level search answer.
    public static func series(_ json: [UInt8]) throws(PACSFailure) -> [Series] {
        try objects(json).enumerated().map { (k, o) throws(PACSFailure) -> Series in
            guard let study = string(o, "0020000D"), let series = string(o, "0020000E") else {
                throw .malformed("search result \(k + 1) has no StudyInstanceUID or SeriesInstanceUID")
            }
            return Series(studyUID: try uid(study), seriesUID: try uid(series), modality: string(o, "00080060"),
                          description: string(o, "0008103E"), number: int(o, "00200011"), instances: int(o, "00201209"))
        }
    }

    /// The SOPInstanceUIDs of an instance-level search answer.
    public static func instances(_ json: [UInt8]) throws(PACSFailure) -> [String] {
        try objects(json).enumerated().map { (k, o) throws(PACSFailure) -> String in
            guard let sop = string(o, "00080018") else { throw .malformed("instance \(k + 1) of the search has no SOPInstanceUID") }
            return try uid(sop)
        }
    }

    /// A UID as the cache's file and folder names use it: digits and dots, at most 64 characters (PS3.5 9.1). Anything
    /// else from a server is refused rather than turned into a path.
    public static func uid(_ s: String) throws(PACSFailure) -> String {
        guard !s.isEmpty, s.utf8.count <= 64, s.utf8.allSatisfy({ $0 == 0x2E || ($0 >= 0x30 && $0 <= 0x39) }),
              !s.hasPrefix("."), !s.hasSuffix("."), !s.contains("..") else {
            throw .malformed("'\(s.prefix(80))' is not a DICOM UID (digits and dots, at most 64 characters)")
        }
        return s
    }

    static func objects(_ json: [UInt8]) throws(PACSFailure) -> [[String: JSONValue]] {
        if json.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [] }   // 204 No Content
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: Data(json)) } catch {
            throw .malformed("the search answer is not JSON (\(String(decoding: json.prefix(60), as: UTF8.self)))")
        }
        guard case .array(let items) = value else { throw .malformed("the search answer is not a JSON array of DICOM objects") }
        return try items.map { item throws(PACSFailure) in
            guard case .object(let o) = item else { throw .malformed("the search answer holds a non-object") }
            return o
        }
    }

    /// The first value of a tag ("0020000D"), as a string (numbers as their decimal form).
    static func string(_ o: [String: JSONValue], _ tag: String) -> String? {
        guard case .object(let element)? = o[tag] ?? o[tag.lowercased()], case .array(let values)? = element["Value"], let first = values.first else { return nil }
        switch first {
        case .string(let s): return s.trimmingCharacters(in: .whitespaces)
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        default: return nil
        }
    }

    static func int(_ o: [String: JSONValue], _ tag: String) -> Int? { string(o, tag).flatMap { Int($0) ?? Double($0).flatMap { Int(exactly: $0.rounded()) } } }
}
