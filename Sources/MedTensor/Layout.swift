import Foundation
import MedCompute
internal import CMedKernels

/// The order of a tensor's stored values.
///
/// `plain` is row-major (NCHW for images). `blocked8` and `blocked16` are oneDNN's nChw8c and nChw16c for 4-D tensors
/// whose channel count is a multiple of the block: channels in blocks of 8 or 16, each block stored pixel by pixel with
/// its channel values together, `[n][c / B][h][w][c % B]`. oneDNN's direct convolutions read and write the block size
/// of the processor's vector registers (16 floats with AVX-512, 8 with AVX2: ``native``), and per-channel work
/// (normalisation, pooling, ReLU) runs on one block at once in one register, so a U-Net keeps its activations blocked
/// from the first convolution to the head and never converts in between.
///
/// Every kernel accepts every layout (a layout is data, not a property of the machine); operations choose ``native``
/// for the results they block.
public enum Layout: Sendable, Equatable, Hashable, CustomStringConvertible {
    case plain
    case blocked8
    case blocked16

    /// Channels per block: 8 or 16 (1 for plain, whose planes are blocks of one channel).
    public var block: Int {
        switch self {
        case .plain: return 1
        case .blocked8: return 8
        case .blocked16: return 16
        }
    }

    /// The blocked layout with `block` channels per block (8 or 16); nil for other sizes.
    public static func blocked(_ block: Int) -> Layout? {
        switch block {
        case 8: return .blocked8
        case 16: return .blocked16
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .plain: return "plain"
        case .blocked8: return "nChw8c"
        case .blocked16: return "nChw16c"
        }
    }

    /// The blocked layout oneDNN's convolutions use on this processor (``blocked16`` with AVX-512, ``blocked8`` with
    /// AVX2), asked once from oneDNN (a 32-channel convolution left free to choose); ``plain`` when oneDNN uses
    /// neither, or when MEDSELECT_CONV=im2col turns oneDNN off. `ONEDNN_MAX_CPU_ISA=AVX2` selects the AVX2 layout on
    /// an AVX-512 processor.
    public static let native: Layout = {
        guard ConvPlans.useDNNL else { return .plain }
        return blocked(Int(mk_native_block())) ?? .plain
    }()

    /// The block as oneDNN's C adapter takes it (0 for plain).
    var cBlock: Int32 { self == .plain ? 0 : Int32(block) }

    /// The instruction set oneDNN's kernels use on this processor ("avx512_core", "avx2", ...), as
    /// `ONEDNN_MAX_CPU_ISA` allows.
    public static var instructionSet: String { String(cString: mk_isa_name()) }

    /// The level MedSelect's own kernels (CMedKernels) run at: "avx512", "avx2" or "baseline", from the processor's
    /// features and `ONEDNN_MAX_CPU_ISA` (which caps both them and oneDNN).
    public static var kernelInstructionSet: String { String(cString: mk_kernel_isa()) }

    /// Whether a tensor of `shape` can be stored in this layout.
    public func fits(_ shape: [Int]) -> Bool {
        self == .plain || (shape.count == 4 && shape[1] % block == 0 && shape[1] > 0)
    }

    /// Converts `source` (ordered as `from`) to `to`; both fit `shape`.
    static func convert(_ source: [Float], shape: [Int], from: Layout, to: Layout) -> [Float] {
        if from == to { return source }
        if from != .plain && to != .plain { return convert(convert(source, shape: shape, from: from, to: .plain), shape: shape, from: .plain, to: to) }
        let blocked = from == .plain ? to : from
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
        return [Float](unsafeUninitializedCapacity: source.count) { out, initialized in
            source.withUnsafeBufferPointer { src in
                mk_convert_layout(src.baseAddress!, out.baseAddress!, n, c, hw, Int32(blocked.block), from == .plain ? 1 : 0)
            }
            initialized = source.count
        }
    }
}

/// How many activation conversions have run in this process: oneDNN's reorders of a convolution's source,
/// destination or gradient between the caller's layout and the primitive's, and ``Layout`` conversions of blocked
/// tensors (``Tensor/data`` of a blocked tensor, ``Tensor/converted(to:)``). A training step on blocked activations
/// makes none; `medselect bench unet` reports this.
public var activationReorders: Int { Int(mk_activation_reorders(0)) }

/// ``activationReorders`` asked for by the calling thread only (what a test on one thread made).
var activationReordersOnThisThread: Int { Int(mk_activation_reorders(1)) }
