/// # MedSelection
///
/// Choosing which samples to annotate, from embeddings: any N x D Float32 matrix (one row per sample) with ids.
///
/// Strategies: ``RandomSelection``, ``CoreSet``, ``XSSR``, ``ColdStart``, ``TypiClust``, ``ProbCover``, and
/// ``Acquisition`` for active-learning rounds. Building blocks, exact and reusable: squared Euclidean distances in row
/// blocks through SGEMM (never an N x N matrix), exact k-nearest neighbours, ``KMeans`` (k-means++), ``Silhouette``,
/// ``PCA``, Barnes-Hut ``TSNE``. Every random choice takes an explicit seed. Formulas, parameters and papers: the
/// articles of the MedSelection documentation catalog.
public enum MedSelectionModule {}

/// SplitMix64: a small, fast, seedable generator; the same seed gives the same sequence on every platform.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
}

/// Errors of selection: inputs a user can fix.
public enum SelectionError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidInput(String)
    public var description: String {
        switch self { case .invalidInput(let s): return s }
    }
}
