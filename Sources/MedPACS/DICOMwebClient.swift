import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MedFoundation
import Synchronization

/// Why a PACS conversation failed: the URL or cache path it is about and a reason a person can act on.
public struct PACSFailure: MedError, Equatable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    static func malformed(_ reason: String) -> PACSFailure { PACSFailure(path: "", reason: reason) }
}

/// A DICOMweb server (the base URL of its QIDO-RS and WADO-RS services, such as `http://pacs:8042/dicom-web`) and the
/// credentials for it, which come only from the environment (never from the command line, which other users of the
/// machine can read, and never into logs): `MEDSELECT_DICOMWEB_TOKEN` (bearer) or `MEDSELECT_DICOMWEB_USER` and
/// `MEDSELECT_DICOMWEB_PASSWORD` (basic). Requests are blocking GETs through Foundation's URLSession (libcurl);
/// connection failures and 502/503/504 are retried twice, a second apart.
public struct DICOMwebClient: Sendable {
    public enum Auth: Sendable, Equatable {
        case none
        case basic(user: String, password: String)
        case bearer(String)
    }

    public let base: URL
    public let auth: Auth
    /// Seconds without progress before a request fails.
    public var timeout: TimeInterval = 120

    /// `url` must be http or https without credentials in it.
    public init(_ url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PACSFailure) {
        var text = url
        while text.hasSuffix("/") { text.removeLast() }
        guard let u = URL(string: text), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https", u.host != nil else {
            throw PACSFailure(path: url, reason: "not a DICOMweb URL (http:// or https://, e.g. http://pacs:8042/dicom-web)")
        }
        if u.user != nil || u.password != nil {
            throw PACSFailure(path: u.host ?? url, reason: "credentials do not belong in the URL: set MEDSELECT_DICOMWEB_USER and MEDSELECT_DICOMWEB_PASSWORD, or MEDSELECT_DICOMWEB_TOKEN, in the environment")
        }
        base = u
        if let token = environment["MEDSELECT_DICOMWEB_TOKEN"], !token.isEmpty {
            auth = .bearer(token)
        } else if let user = environment["MEDSELECT_DICOMWEB_USER"], !user.isEmpty {
            auth = .basic(user: user, password: environment["MEDSELECT_DICOMWEB_PASSWORD"] ?? "")
        } else {
            auth = .none
        }
    }

    /// Whether `text` names a DICOMweb server rather than a folder.
    public static func isURL(_ text: String) -> Bool {
        let t = text.lowercased()
        return t.hasPrefix("http://") || t.hasPrefix("https://")
    }

    /// `base` + path + query, with the query's values percent-encoded.
    public func url(_ path: String, query: [(String, String)] = []) -> URL {
        var c = URLComponents(url: base.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        if !query.isEmpty { c.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        // "+" is a space to many servers' query parsers; keep it literal.
        c.percentEncodedQuery = c.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return c.url!
    }

    /// The URL without its query, for messages.
    static func shown(_ url: URL) -> String {
        var c = URLComponents(url: url, resolvingAgainstBaseURL: false)
        c?.query = nil
        return c?.string ?? url.absoluteString
    }

    /// GET `url` with `accept`; the body and the Content-Type. Non-2xx answers are errors with the status and the
    /// start of the server's message.
    public func get(_ url: URL, accept: String) throws(PACSFailure) -> (body: [UInt8], contentType: String) {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.setValue(accept, forHTTPHeaderField: "Accept")
        switch auth {
        case .none: break
        case .basic(let user, let password):
            request.setValue("Basic " + Data("\(user):\(password)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        case .bearer(let token): request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
        }
        var attempt = 0
        while true {
            attempt += 1
            let (data, response, error) = Self.send(request)
            let status = (response as? HTTPURLResponse)?.statusCode
            let transient = error != nil || status == 502 || status == 503 || status == 504
            if transient && attempt < 3 { Thread.sleep(forTimeInterval: 1); continue }
            if let error {
                throw PACSFailure(path: Self.shown(url), reason: "cannot reach the server: \((error as NSError).localizedDescription)")
            }
            guard let http = response as? HTTPURLResponse else { throw PACSFailure(path: Self.shown(url), reason: "no HTTP answer") }
            let body = [UInt8](data ?? Data())
            switch http.statusCode {
            case 200..<300:
                return (body, http.value(forHTTPHeaderField: "Content-Type") ?? "")
            case 401, 403:
                let hint = auth == .none ? "the server wants credentials: set MEDSELECT_DICOMWEB_USER and MEDSELECT_DICOMWEB_PASSWORD, or MEDSELECT_DICOMWEB_TOKEN"
                                         : "the server refused the credentials from MEDSELECT_DICOMWEB_*"
                throw PACSFailure(path: Self.shown(url), reason: "HTTP \(http.statusCode): \(hint)")
            default:
                let message = String(decoding: body.prefix(160), as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: " ")
                throw PACSFailure(path: Self.shown(url), reason: "HTTP \(http.statusCode)\(message.isEmpty ? "" : ": " + message)")
            }
        }
    }

    /// One request, waited for. A 401/407 comes back as that response (see ``ChallengeRefuser``).
    private static func send(_ request: URLRequest) -> (Data?, URLResponse?, Error?) {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<(Data?, URLResponse?, Error?)>((nil, nil, nil))
        let task = session.dataTask(with: request) { data, response, error in
            result.withLock { $0 = (data, response, error) }
            done.signal()
        }
        task.resume()
        done.wait()
        if let refused = refuser.refused(task.taskIdentifier) { return (nil, refused, nil) }
        return result.withLock { $0 }
    }

    private static let refuser = ChallengeRefuser()
    private static let session = URLSession(configuration: .ephemeral, delegate: refuser, delegateQueue: nil)

    // MARK: QIDO-RS and WADO-RS

    /// Series-level search (`GET {base}/series?...`) with the user's KEY=VALUE filters, page by page.
    public func searchSeries(_ filters: [(String, String)], pageSize: Int = 500) throws(PACSFailure) -> [QIDO.Series] {
        var all: [QIDO.Series] = []
        var offset = 0
        while true {
            let query = filters + QIDO.seriesFields.map { ("includefield", $0) } + [("limit", String(pageSize)), ("offset", String(offset))]
            let u = url("series", query: query)
            let page: [QIDO.Series]
            do { page = try QIDO.series(get(u, accept: "application/dicom+json").body) } catch { throw located(error, u) }
            all += page
            if page.count < pageSize { return all }
            offset += page.count
        }
    }

    /// The SOPInstanceUIDs of one series (`GET {base}/studies/{study}/series/{series}/instances`).
    public func instances(of s: QIDO.Series) throws(PACSFailure) -> [String] {
        let u = url("studies/\(s.studyUID)/series/\(s.seriesUID)/instances", query: [("includefield", "00080018")])
        do { return try QIDO.instances(get(u, accept: "application/dicom+json").body) } catch { throw located(error, u) }
    }

    /// One instance's DICOM file (WADO-RS `GET .../instances/{sop}`, `multipart/related; type="application/dicom"`,
    /// in the transfer syntax the PACS stored it in).
    public func instance(_ sop: String, of s: QIDO.Series) throws(PACSFailure) -> [UInt8] {
        let u = url("studies/\(s.studyUID)/series/\(s.seriesUID)/instances/\(sop)")
        let (body, contentType) = try get(u, accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*")
        guard let boundary = Multipart.boundary(contentType: contentType) else {
            if body.count > 132 && Array(body[128..<132]) == Array("DICM".utf8) { return body }   // a bare application/dicom answer
            throw PACSFailure(path: Self.shown(u), reason: "expected a multipart/related answer, got '\(contentType)'")
        }
        let parts: [Multipart.Part]
        do { parts = try Multipart.parts(body, boundary: boundary) } catch { throw located(error, u) }
        guard let first = parts.first, !first.body.isEmpty else { throw PACSFailure(path: Self.shown(u), reason: "the answer holds no DICOM instance") }
        return first.body
    }

    private func located(_ e: PACSFailure, _ u: URL) -> PACSFailure { e.path.isEmpty ? PACSFailure(path: Self.shown(u), reason: e.reason) : e }
}

/// Answers every authentication challenge by cancelling it and keeps the server's 401 for the caller. Credentials go
/// in the Authorization header of each request; without a delegate, Foundation on Linux (swift-corelibs-foundation
/// issue 5456) waits forever on a 401 that carries WWW-Authenticate.
private final class ChallengeRefuser: NSObject, URLSessionTaskDelegate, Sendable {
    private let responses = Mutex<[Int: HTTPURLResponse]>([:])

    func urlSession(_ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
                    completionHandler: @escaping (URLSession.AuthChallengeDisposition, URLCredential?) -> Void) {
        if let r = challenge.failureResponse as? HTTPURLResponse { responses.withLock { $0[task.taskIdentifier] = r } }
        completionHandler(.cancelAuthenticationChallenge, nil)
    }

    /// The refused response of task `id`, once (removed when read).
    func refused(_ id: Int) -> HTTPURLResponse? { responses.withLock { $0.removeValue(forKey: id) } }
}
