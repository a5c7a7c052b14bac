// swift-tools-version:6.1
// MedSelect: choose which medical images are worth annotating, train on them, and report per-site shift.
// Module layout and dependency direction: Docs/DESIGN.md (formats -> images -> data -> learning/selection -> experiments -> CLI).
import PackageDescription

/// Scripts/fuzz sets MEDSELECT_FUZZ=1 to build the reader fuzz target with libFuzzer and AddressSanitizer.
let fuzzing = Context.environment["MEDSELECT_FUZZ"] == "1"
/// Coverage instrumentation for the code under fuzzing (the readers and their C adapters, the configuration parsers).
let fuzzSwift: [SwiftSetting] = fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : []
let fuzzC: [CSetting] = fuzzing ? [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])] : []

/// Numeric modules whose tests run real workloads (t-SNE of thousands of points, U-Net training, resampling, phantom
/// rendering) are optimised in debug builds too, so the suite stays fast; `-enable-testing` is kept, so `@testable
/// import` still works, and preconditions and overflow checks stay on (-O, not -Ounchecked).
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "MedSelect",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "medselect", targets: ["medselect"]),
        .library(name: "MedFoundation", targets: ["MedFoundation"]),
        .library(name: "MedImage", targets: ["MedImage"]),
        .library(name: "MedFormats", targets: ["MedFormats"]),
        .library(name: "MedData", targets: ["MedData"]),
        .library(name: "MedPACS", targets: ["MedPACS"]),
        .library(name: "MedMetrics", targets: ["MedMetrics"]),
        .library(name: "MedSelection", targets: ["MedSelection"]),
        .library(name: "MedCompute", targets: ["MedCompute"]),
        .library(name: "MedReport", targets: ["MedReport"]),
        .library(name: "MedAnalysis", targets: ["MedAnalysis"]),
        .library(name: "MedPipeline", targets: ["MedPipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C adapters: module maps and tiny shims around system libraries. Internal, never products.
        .target(
            name: "CNIfTI",
            cSettings: [.define("HAVE_ZLIB")] + fuzzC,
            linkerSettings: [.linkedLibrary("nifti2"), .linkedLibrary("znz"), .linkedLibrary("deflate"), .linkedLibrary("z"), .linkedLibrary("m")]
        ),
        .target(
            name: "CPNG",
            cSettings: fuzzC,
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("z")]
        ),
        .target(
            name: "CGDCM",
            // Optimised in debug builds too: the per-sample conversion runs here.
            cxxSettings: [.unsafeFlags(["-I/usr/include/gdcm-3.0", "-O2"])],
            linkerSettings: [.linkedLibrary("gdcmMSFF"), .linkedLibrary("gdcmDSED"), .linkedLibrary("gdcmCommon"), .linkedLibrary("gdcmDICT"),
                             .linkedLibrary("gdcmIOD"), .linkedLibrary("stdc++")]
        ),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),

        // Under every other module: the seeded random source, FNV-1a, atomic writes, the error protocol.
        .target(name: "MedFoundation"),
        .target(name: "MedImage", dependencies: ["MedFoundation", "MedCompute"], swiftSettings: fuzzSwift + (fuzzing ? [] : optimizedInDebug)),
        .target(name: "MedFormats", dependencies: ["MedFoundation", "MedCompute", "MedImage", "CNIfTI", "CPNG", "CZlib", "CGDCM"], swiftSettings: fuzzSwift + (fuzzing ? [] : optimizedInDebug)),
        .target(name: "MedData", dependencies: ["MedFoundation", "MedCompute", "MedImage", "MedFormats", "CSQLite"], swiftSettings: fuzzSwift + (fuzzing ? [] : optimizedInDebug)),
        // The PACS side: DICOMweb search and retrieval into a local cache (FoundationNetworking, i.e. libcurl).
        .target(name: "MedPACS", dependencies: ["MedFoundation"], swiftSettings: fuzzSwift),
        .target(name: "MedMetrics", dependencies: ["MedFoundation", "MedImage"], swiftSettings: optimizedInDebug),
        // Optimised in debug builds too (the test suite trains small networks), without errno from sqrtf so that the
        // compiler can vectorise it, and with 512-bit vectors in the AVX-512 versions of the kernels (clang otherwise
        // prefers 256 bits there); libgomp is the OpenMP runtime Debian's oneDNN uses, whose threads the parallel
        // loop shares.
        .target(
            name: "CMedKernels",
            cSettings: [.unsafeFlags(["-O2", "-fno-math-errno", "-mprefer-vector-width=512"])],
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]
        ),
        .target(name: "MedCompute", dependencies: ["CMedKernels", "COpenBLAS"]),
        .target(name: "MedTensor", dependencies: ["MedFoundation", "MedCompute", "CMedKernels"], swiftSettings: optimizedInDebug),
        .target(name: "MedNN", dependencies: ["MedFoundation", "MedTensor"], swiftSettings: optimizedInDebug),
        .target(name: "MedSelection", dependencies: ["MedFoundation", "MedCompute"], swiftSettings: optimizedInDebug),
        .target(name: "MedReport", dependencies: ["MedFoundation"]),
        .target(name: "MedAnalysis", dependencies: ["MedFoundation", "MedImage", "MedCompute", "MedSelection", "MedReport"], swiftSettings: optimizedInDebug),
        .target(name: "MedPipeline", dependencies: ["MedFoundation", "MedImage", "MedFormats", "MedData", "MedMetrics", "MedTensor", "MedNN",
                                                    "MedSelection", "MedReport", "MedAnalysis"], swiftSettings: fuzzSwift + (fuzzing ? [] : optimizedInDebug)),
        .executableTarget(
            name: "medselect",
            dependencies: [
                "MedImage", "MedFormats", "MedData", "MedMetrics", "MedCompute", "MedSelection", "MedTensor", "MedNN", "MedReport", "MedAnalysis",
                "MedFoundation", "MedPipeline", "MedPACS", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzz entry points for the readers and the configuration files (built only by Scripts/fuzz with -sanitize=fuzzer).
        .executableTarget(
            name: "medselect-fuzz",
            dependencies: ["MedFormats", "MedPACS", "MedData", "MedPipeline"],
            swiftSettings: fuzzing ? [.define("FUZZING"), .unsafeFlags(["-parse-as-library", "-sanitize=fuzzer,address"])] : [],
            linkerSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : []
        ),

        .target(name: "TestSupport", dependencies: ["MedFoundation", "MedTensor", "MedImage", "MedFormats", "MedSelection", "CZlib"], path: "Tests/TestSupport"),
        .testTarget(name: "MedImageTests", dependencies: ["MedImage", "TestSupport"]),
        .testTarget(name: "MedFormatsTests", dependencies: ["MedFormats", "MedImage", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MedSelectionTests", dependencies: ["MedSelection", "TestSupport"]),
        .testTarget(name: "MedDataTests", dependencies: ["MedData", "MedFormats", "MedImage", "TestSupport"]),
        .testTarget(name: "MedTensorTests", dependencies: ["MedFoundation", "MedTensor", "TestSupport"]),
        .testTarget(name: "MedNNTests", dependencies: ["MedFoundation", "MedTensor", "MedNN", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MedMetricsTests", dependencies: ["MedMetrics", "MedImage", "TestSupport"]),
        .testTarget(name: "MedAnalysisTests", dependencies: ["MedAnalysis", "MedReport", "MedFoundation", "TestSupport"]),
        .testTarget(name: "MedReportTests", dependencies: ["MedReport"]),
        .testTarget(name: "MedPACSTests", dependencies: ["MedPACS"]),
        .testTarget(name: "MedPipelineTests", dependencies: ["MedPipeline", "MedAnalysis", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["medselect", "TestSupport", "MedFoundation", "MedFormats", "MedImage", "MedSelection", "MedTensor"]),
    ]
)
