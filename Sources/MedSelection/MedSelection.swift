import MedFoundation

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


/// Errors of selection: inputs a user can fix.
public enum SelectionError: MedError, Sendable, Equatable {
    case invalidInput(String)
    public var path: String { "selection" }
    public var reason: String {
        switch self { case .invalidInput(let s): return s }
    }
}
