/// The one shape of a MedSelect error: what it is about (a file, a folder, an option; empty when nothing more
/// specific than the message itself) and a reason a person can act on. Every module's error type adopts it, so the
/// command line prints any of them the same way, `error: <path>: <reason>`, and a stage that wraps another's error
/// keeps its message instead of flattening it.
public protocol MedError: Error, CustomStringConvertible {
    var path: String { get }
    var reason: String { get }
}

extension MedError {
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}
