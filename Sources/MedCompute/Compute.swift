import Foundation
internal import CMedKernels
internal import COpenBLAS

/// # MedCompute
///
/// The compute core that MedTensor and MedSelection share: one parallel loop and one matrix product.
///
/// - ``parallelFor(_:chunk:_:)`` and ``parallelRanges(_:chunk:_:)`` run on the OpenMP threads that oneDNN's primitives
///   use (libgomp's pool), so convolutions, SGEMMs and MedSelect's own loops take turns on one set of threads instead
///   of two pools competing for the cores (the cause of step times that scattered by up to 50 %).
/// - ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` is oneDNN's SGEMM, with OpenBLAS as the fallback.
/// - ``threads`` sets how many threads both use.
public enum Compute {
    /// Threads of the parallel loop and of oneDNN (OpenMP's `OMP_NUM_THREADS`, by default one per core). Setting it
    /// applies to the calling thread.
    public static var threads: Int {
        get { Int(mk_threads()) }
        set { mk_set_threads(Int32(newValue)) }
    }

    /// Row-major C = α op(A) op(B) + β C (op: transposed when `transA` / `transB`), through oneDNN's SGEMM; OpenBLAS
    /// when oneDNN refuses.
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        let rc = mk_sgemm(CChar(UInt8(ascii: transA ? "T" : "N")), CChar(UInt8(ascii: transB ? "T" : "N")), m, n, k, alpha, a, lda, b, ldb,
                          beta, c, ldc)
        if rc != 0 {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                        a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}

extension Compute {
    /// Σ a[i] b[i] over `count` values, at the machine's vector width.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float { mk_dot(a, b, count) }
}

/// The body of a parallel loop, passed to C by address.
private struct RangeBody { let run: (Range<Int>) -> Void }

/// Runs `body` on consecutive ranges of at most `chunk` items covering 0..<count, concurrently on the compute
/// threads (ranges are handed out in order to whichever thread is free). `body` must be safe to call from several
/// threads at once. Serial when there is one range, or when called from inside another parallel loop.
public func parallelRanges(_ count: Int, chunk: Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    if count <= chunk { body(0..<count); return }
    withoutActuallyEscaping(body) { run in
        var box = RangeBody(run: run)
        withUnsafeMutablePointer(to: &box) { pointer in
            mk_parallel_for(count, max(1, chunk), { context, begin, end in
                context!.assumingMemoryBound(to: RangeBody.self).pointee.run(Int(begin)..<Int(end))
            }, pointer)
        }
    }
}

/// Runs body(i) for i in 0..<count concurrently on the compute threads, `chunk` consecutive items at a time (1:
/// items handed out one by one, for items of uneven cost). `body` must be safe to call from several threads at once.
public func parallelFor(_ count: Int, chunk: Int = 1, _ body: (Int) -> Void) {
    if count == 1 { body(0); return }
    parallelRanges(count, chunk: chunk) { range in for i in range { body(i) } }
}
