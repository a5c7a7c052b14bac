/// The bodies of a `multipart/related` response (RFC 2046, as WADO-RS sends DICOM instances): the boundary from the
/// Content-Type header, then each part's headers and bytes. A pure function of its input, so that it can be fuzzed
/// (`Scripts/fuzz multipart`); a body that does not follow the format is refused with the reason.
public enum Multipart {
    public struct Part: Sendable, Equatable {
        /// Header names in lower case.
        public var headers: [String: String]
        public var body: [UInt8]
    }

    /// The `boundary` parameter of a Content-Type such as `multipart/related; type="application/dicom"; boundary=XYZ`.
    public static func boundary(contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let media = parts.first, media.lowercased().hasPrefix("multipart/") else { return nil }
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            var value = kv[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.utf8.count > 70 ? nil : value
        }
        return nil
    }

    /// The parts between `--boundary` delimiters, up to the closing `--boundary--`. Throws the reason when the body
    /// has no opening delimiter, a part without a blank line after its headers, or no closing delimiter (a body cut
    /// short).
    public static func parts(_ body: [UInt8], boundary: String) throws(PACSFailure) -> [Part] {
        let delimiter = Array(("--" + boundary).utf8)
        guard var at = find(delimiter, in: body, from: 0) else { throw .malformed("no multipart boundary \(boundary) in the body") }
        var parts: [Part] = []
        while true {
            at += delimiter.count
            if at + 1 < body.count && body[at] == 0x2D && body[at + 1] == 0x2D { return parts }   // "--": the closing delimiter
            // The rest of the delimiter line (transport padding), then CRLF.
            guard let lineEnd = find([0x0D, 0x0A], in: body, from: at) else { throw .malformed("multipart body ends inside a delimiter line") }
            let headerStart = lineEnd + 2
            guard let headerEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: headerStart - 2) else {
                throw .malformed("multipart part \(parts.count + 1) has no end of headers")
            }
            var headers: [String: String] = [:]
            if headerEnd > headerStart {
                for line in String(decoding: body[headerStart..<headerEnd], as: UTF8.self).split(separator: "\r\n") {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            let bodyStart = headerEnd + 4
            guard let next = find([0x0D, 0x0A] + delimiter, in: body, from: bodyStart) else {
                throw .malformed("multipart body ends inside part \(parts.count + 1) (no closing boundary; the transfer was cut short?)")
            }
            parts.append(Part(headers: headers, body: next > bodyStart ? Array(body[bodyStart..<next]) : []))
            at = next + 2
        }
    }

    /// The first index of `needle` in `haystack` at or after `from` (first-byte scan, then compare).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        let n = needle.count, h = haystack.count
        guard n > 0, from >= 0, h - n >= from else { return nil }
        return haystack.withUnsafeBufferPointer { hp in
            needle.withUnsafeBufferPointer { np in
                let first = np[0]
                var i = from
                while i <= h - n {
                    if hp[i] == first {
                        var k = 1
                        while k < n && hp[i + k] == np[k] { k += 1 }
                        if k == n { return i }
                    }
                    i += 1
                }
                return nil
            }
        }
    }
}
