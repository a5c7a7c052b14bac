import ArgumentParser
import MedNN
import MedPipeline

// Choice options are enums: ArgumentParser checks them while parsing and lists their values in the help, so no
// command checks a string by hand. Enums of the libraries become arguments here (their raw values are the words).

extension Strategy: ExpressibleByArgument {
    /// Any case ("XSSR" as "xssr").
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
}

extension Budget: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
    public var defaultValueDescription: String { description }
}

extension UNet.Normalization: ExpressibleByArgument, CaseIterable {
    public static var allCases: [UNet.Normalization] { [.batch, .instance] }
}
extension InitPart: ExpressibleByArgument {}
extension MaskedAutoencoder.Pooling: ExpressibleByArgument {}
extension UncertaintyMeasure: ExpressibleByArgument {}

/// `pretrain --method`.
enum PretrainMethod: String, CaseIterable, ExpressibleByArgument { case mae, hssl }
/// `export --format`.
enum ExportFormat: String, CaseIterable, ExpressibleByArgument { case nnunet, monai }
/// `cache --normalize`.
enum IntensityNormalization: String, CaseIterable, ExpressibleByArgument { case zscore, minmax, none }
/// `uncertainty --measure`: the per-case score of a model's softmax.
enum UncertaintyMeasure: String, CaseIterable { case entropy, margin }
