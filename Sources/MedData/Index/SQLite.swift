import Foundation
internal import CSQLite

/// A thin SQLite connection: statements with bound values, rows as dictionaries, transactions. Errors carry the
/// database path and SQLite's message.
final class SQLiteDatabase: @unchecked Sendable {
    let path: String
    private var handle: OpaquePointer?

    enum Value: Sendable, Equatable {
        case null, int(Int64), real(Double), text(String)
        var string: String? { if case .text(let s) = self { return s }; return nil }
        var int: Int64? { switch self { case .int(let i): return i; case .real(let d): return Int64(d); default: return nil } }
        var double: Double? { switch self { case .real(let d): return d; case .int(let i): return Double(i); default: return nil } }
    }

    init(path: String) throws {
        self.path = path
        var h: OpaquePointer?
        let rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let h else {
            let message = h.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(h)
            throw DataError.badDataset(path: path, reason: "cannot open the SQLite database: \(message)")
        }
        handle = h
        sqlite3_busy_timeout(h, 5000)
        // WAL: readers never block the writer, and a killed writer leaves the last committed state.
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=NORMAL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit { sqlite3_close(handle) }

    private func fail(_ what: String) -> DataError {
        .badDataset(path: path, reason: "\(what): \(String(cString: sqlite3_errmsg(handle)))")
    }

    /// Runs one or more statements without parameters.
    func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &err) != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            throw DataError.badDataset(path: path, reason: "SQLite: \(message) (in: \(sql.prefix(80)))")
        }
    }

    /// Runs a statement with parameters; returns the rows (column name -> value).
    @discardableResult
    func query(_ sql: String, _ parameters: [Value] = []) throws -> [[String: Value]] {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { throw fail("cannot prepare \(sql.prefix(60))") }
        defer { sqlite3_finalize(stmt) }
        for (i, p) in parameters.enumerated() {
            let k = Int32(i + 1)
            switch p {
            case .null: sqlite3_bind_null(stmt, k)
            case .int(let v): sqlite3_bind_int64(stmt, k, v)
            case .real(let v): sqlite3_bind_double(stmt, k, v)
            case .text(let v): sqlite3_bind_text(stmt, k, v, -1, csqlite_transient())
            }
        }
        var rows: [[String: Value]] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw fail("cannot run \(sql.prefix(60))") }
            var row: [String: Value] = [:]
            for c in 0..<sqlite3_column_count(stmt) {
                let name = String(cString: sqlite3_column_name(stmt, c))
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: row[name] = .int(sqlite3_column_int64(stmt, c))
                case SQLITE_FLOAT: row[name] = .real(sqlite3_column_double(stmt, c))
                case SQLITE_TEXT: row[name] = .text(String(cString: sqlite3_column_text(stmt, c)))
                default: row[name] = .null
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}
