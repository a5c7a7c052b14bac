import MedFoundation
/// # MedData
///
/// Datasets of medical images and where they come from. This module owns the phantom benchmark generator
/// (``PhantomGenerator``): synthetic chest X-ray, fundus and prostate MRI sites whose scanner shift is known exactly,
/// written in the folder layouts and file formats of the real public benchmarks (Montgomery/Shenzhen, RIGA+, the
/// six-site prostate collection), so that the dataset adapters read both. Datasets, adapters, the SQLite index and
/// exports arrive with their issue and build on the same layouts (Docs/datasets.md).
///
/// Depends on MedImage (images and geometry) and MedFormats (writers); nothing above it.
public enum MedDataModule {}

/// Errors of the data layer: a configuration or a folder a person can fix. Each names the file and the reason.
public enum DataError: MedError, Sendable, Equatable {
    /// A configuration file (sites JSON) that cannot be used.
    case badConfiguration(path: String, reason: String)
    /// A folder or file of a dataset that cannot be used.
    case badDataset(path: String, reason: String)

    public var reason: String {
        switch self {
        case .badConfiguration(_, let reason), .badDataset(_, let reason): return reason
        }
    }
    public var path: String {
        switch self {
        case .badConfiguration(let path, _), .badDataset(let path, _): return path
        }
    }
}
