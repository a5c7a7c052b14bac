import ArgumentParser
import MedData
import MedMetrics
import MedNN
import MedPipeline
import MedSelection

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
extension SiteRule: ExpressibleByArgument {}
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

/// `--split` of the commands that work on part of a dataset (as `train` splits it).
enum DatasetPart: String, CaseIterable, ExpressibleByArgument { case all, train, validation }
/// `embed --method`: "mae" and "hssl" name the encoder's kind and mean `encoder`.
enum EmbedMethod: String, CaseIterable, ExpressibleByArgument {
    case thumbnail, encoder, mae, hssl
    var usesEncoder: Bool { self != .thumbnail }
}
/// `pretrain --domain`: what an HSSL domain is.
enum HSSLDomain: String, CaseIterable, ExpressibleByArgument { case dataset, site }
/// `metrics --both-empty`: Dice when both masks are empty.
enum BothEmptyDice: String, CaseIterable, ExpressibleByArgument { case nan, one = "1" }
/// `metrics --one-empty`: distances when one mask is empty.
enum OneEmptyDistance: String, CaseIterable, ExpressibleByArgument { case inf, nan }
extension HD95Pooling: ExpressibleByArgument, CaseIterable {
    public static var allCases: [HD95Pooling] { [.maxOfDirected, .pooled] }
}
/// `phantom --preset`: the built-in site sets (which exist for which benchmark: ``PhantomConfig/presetNames``).
enum PhantomPresetName: String, CaseIterable, ExpressibleByArgument { case graded, hard, sixSite = "six-site" }

extension RunName: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

extension Worklist.Format: ExpressibleByArgument {}

/// How XSSR meets a large pool (`select --knn`, `bench scale --scale`): exact, approximate, or auto (approximate from
/// 200,000 rows on).
enum XSSRScale: String, CaseIterable, ExpressibleByArgument {
    case exact, approximate, auto
    var scale: XSSR.Scale {
        switch self {
        case .exact: return .exact
        case .approximate: return .defaultApproximate
        case .auto: return .auto
        }
    }
}
