import Foundation
import MedTensor
import MedFoundation

/// The masked autoencoder of He et al. (2022, "Masked autoencoders are scalable vision learners"), as in its reference
/// code and in Scripts/reference/torch_mae_step.py, whose names it keeps: images are cut into patches and embedded
/// (`patch_embed`, a Conv2d weight applied to each patch); fixed 2-D sine-cosine position embeddings (`pos`, `dpos`,
/// buffers) are added; each sample keeps a random (1 − mask ratio) share of its patches (per-sample noise, argsort);
/// a class token (`cls`) leads the kept patches through `depth` pre-norm transformer blocks (`blocks`) and a final
/// LayerNorm (`norm`); `dec_embed` maps to the decoder width, a learned `mask_token` fills the hidden positions in
/// their original order, `dblocks` and `dnorm` follow, and `pred` predicts every patch's pixels. The loss is the mean
/// squared error over the hidden patches only, optionally against per-patch normalised pixels (`normalizedTargets`,
/// the reference's norm_pix_loss). At inference (``embed(_:pool:)``) nothing is masked.
public final class MaskedAutoencoder: Layer {
    /// What the model is: enough to rebuild it (stored in weights files).
    public struct Configuration: Sendable, Codable, Equatable {
        public var imageSize = 128, channels = 1, patch = 16
        public var width = 192, depth = 6, heads = 3, mlpRatio = 4
        public var decoderWidth = 128, decoderDepth = 2, decoderHeads = 4
        public var maskRatio = 0.75
        public var normalizedTargets = false
        public init() {}
        enum CodingKeys: String, CodingKey {
            case imageSize = "image_size", channels, patch, width, depth, heads, mlpRatio = "mlp_ratio", decoderWidth = "decoder_width"
            case decoderDepth = "decoder_depth", decoderHeads = "decoder_heads", maskRatio = "mask_ratio", normalizedTargets = "normalized_targets"
        }
        public var patchesPerImage: Int { (imageSize / patch) * (imageSize / patch) }
        /// Patches each sample keeps: ⌊N (1 − mask ratio)⌋, as the reference's int(N * (1 - ratio)).
        public var keptPatches: Int { Int(Double(patchesPerImage) * (1 - maskRatio)) }
        /// Bytes a training step on `batch` images holds at its peak, roughly: per transformer block the attention
        /// probabilities kept for the backward pass (batch x heads x T² for T tokens: the kept patches and the class
        /// token in the encoder, every patch in the decoder) and about 16 activations of the block's width per token,
        /// plus one more attention matrix while the backward pass runs. An estimate for refusing sizes that cannot
        /// fit (the attention grows with the fourth power of size / patch), not an exact account.
        public func trainingBytes(batch: Int) -> Double {
            func block(_ tokens: Int, _ width: Int, _ heads: Int) -> Double {
                let b = Double(batch), t = Double(tokens)
                return 4 * (b * Double(heads) * t * t + Double(4 * mlpRatio) * b * t * Double(width))
            }
            let encoder = block(keptPatches + 1, width, heads), decoder = block(patchesPerImage + 1, decoderWidth, decoderHeads)
            let largestAttention = 4 * Double(batch) * Double(max(heads, decoderHeads)) * pow(Double(patchesPerImage + 1), 2)
            return Double(depth) * encoder + Double(decoderDepth) * decoder + largestAttention
        }
        /// Why this configuration cannot be built, or nil.
        public var problem: String? {
            if imageSize < 1 || patch < 1 || imageSize % patch != 0 { return "the image size \(imageSize) is not a multiple of the patch size \(patch)" }
            if channels < 1 { return "channels must be at least 1" }
            if width % (2 * heads) != 0 || width % 4 != 0 { return "the width \(width) must be a multiple of 4 and of twice the heads (\(heads))" }
            if decoderWidth % (2 * decoderHeads) != 0 || decoderWidth % 4 != 0 {
                return "the decoder width \(decoderWidth) must be a multiple of 4 and of twice its heads (\(decoderHeads))"
            }
            if depth < 1 || decoderDepth < 1 || mlpRatio < 1 { return "depths and the MLP ratio must be at least 1" }
            if !(maskRatio > 0 && maskRatio < 1) || keptPatches < 1 || keptPatches == patchesPerImage {
                return "the mask ratio \(maskRatio) must hide at least one patch (the loss is computed on the hidden ones) and leave at least one visible"
            }
            return nil
        }
        /// In words, for messages.
        public var summary: String {
            "\(imageSize) px, \(channels) channel\(channels == 1 ? "" : "s"), patch \(patch), encoder \(width) x \(depth) (\(heads) heads), decoder \(decoderWidth) x \(decoderDepth) (\(decoderHeads) heads), mask \(maskRatio)"
        }
    }

    /// How an image's embedding is pooled from the encoder's output.
    public enum Pooling: String, Sendable, Codable, CaseIterable { case cls, mean }

    public let configuration: Configuration
    let patchWeight: Tensor, patchBias: Tensor
    let cls: Tensor, maskToken: Tensor
    let pos: Tensor, dpos: Tensor
    let blocks: LayerList<TransformerBlock>
    let norm: LayerNorm
    let decEmbed: Linear
    let dblocks: LayerList<TransformerBlock>
    let dnorm: LayerNorm
    let pred: Linear
    public var isTraining = true

    public init(_ configuration: Configuration, seed: UInt64 = 0) {
        precondition(configuration.problem == nil, configuration.problem ?? "")
        self.configuration = configuration
        let c = configuration
        var rng = SplitMix64(seed: seed)
        let n = c.patchesPerImage, inner = c.channels * c.patch * c.patch
        // Patch embedding: Xavier-uniform on the flattened weight (as the reference), bias as PyTorch's Conv2d default.
        let bound = (6 / Float(inner + c.width)).squareRoot(), biasBound = 1 / Float(inner).squareRoot()
        patchWeight = Tensor(shape: [c.width, c.channels, c.patch, c.patch],
                             data: (0..<(c.width * inner)).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        patchBias = Tensor(shape: [c.width], data: (0..<c.width).map { _ in Float.random(in: -biasBound...biasBound, using: &rng) }, requiresGrad: true)
        cls = Tensor(randomNormal: [1, 1, c.width], std: 0.02, generator: &rng, requiresGrad: true)
        maskToken = Tensor(randomNormal: [1, 1, c.decoderWidth], std: 0.02, generator: &rng, requiresGrad: true)
        pos = Self.sinCosPositions(c.imageSize / c.patch, width: c.width, count: n)
        dpos = Self.sinCosPositions(c.imageSize / c.patch, width: c.decoderWidth, count: n)
        blocks = LayerList((0..<c.depth).map { _ in TransformerBlock(width: c.width, heads: c.heads, mlpRatio: c.mlpRatio, rng: &rng) })
        norm = LayerNorm(c.width)
        decEmbed = Linear(c.width, c.decoderWidth, rng: &rng)
        dblocks = LayerList((0..<c.decoderDepth).map { _ in
            TransformerBlock(width: c.decoderWidth, heads: c.decoderHeads, mlpRatio: c.mlpRatio, rng: &rng)
        })
        dnorm = LayerNorm(c.decoderWidth)
        pred = Linear(c.decoderWidth, inner, rng: &rng)
    }

    public var localParameters: [(String, Tensor)] {
        [("patch_embed.weight", patchWeight), ("patch_embed.bias", patchBias), ("cls", cls), ("mask_token", maskToken)]
    }
    public var localBuffers: [(String, Tensor)] { [("pos", pos), ("dpos", dpos)] }
    public var children: [(String, any Layer)] {
        [("blocks", blocks), ("norm", norm), ("dec_embed", decEmbed), ("dblocks", dblocks), ("dnorm", dnorm), ("pred", pred)]
    }

    /// Parameters that AdamW should not decay: biases, normalisation weights (every parameter of rank 1) and the
    /// class and mask tokens (the reference's parameter groups).
    public var decayMask: [Bool] {
        namedParameters.map { name, t in !(t.rank <= 1 || name == "cls" || name == "mask_token") }
    }

    /// The encoder's weights only (patch embedding, class token, positions, blocks, final norm): what `embed` needs.
    public var encoderStateDict: [String: Tensor] {
        stateDict.filter { key, _ in !(key.hasPrefix("dec_embed.") || key.hasPrefix("dblocks.") || key.hasPrefix("dnorm.") || key.hasPrefix("pred.")
                                       || key == "mask_token" || key == "dpos") }
    }

    /// Fixed 2-D sine-cosine position embeddings [1, 1 + count, width] of a grid × grid patch layout, the class
    /// position (row 0) zero, as the MAE reference's get_2d_sincos_pos_embed: for the patch at (row, column), the
    /// first width/2 values encode the column and the last width/2 the row; each half is sin(p ω_k) for k below
    /// width/4, then cos(p ω_k), with ω_k = 1 / 10000^(k / (width/4)).
    public static func sinCosPositions(_ grid: Int, width: Int, count: Int) -> Tensor {
        let quarter = width / 4
        var out = [Float](repeating: 0, count: (count + 1) * width)
        for row in 0..<grid { for col in 0..<grid {
            let m = row * grid + col
            for (half, p) in [(0, Double(col)), (1, Double(row))] {
                for k in 0..<quarter {
                    let omega = 1 / Foundation.pow(10000, Double(k) / Double(quarter))
                    out[(1 + m) * width + half * 2 * quarter + k] = Float(sin(p * omega))
                    out[(1 + m) * width + half * 2 * quarter + quarter + k] = Float(cos(p * omega))
                }
            }
        } }
        return Tensor(shape: [1, count + 1, width], data: out)
    }

    /// Per-sample uniform noise [B][N] whose argsort decides which patches are kept (the lowest).
    public func noise(batch: Int, rng: inout SplitMix64) -> [[Float]] {
        (0..<batch).map { _ in (0..<configuration.patchesPerImage).map { _ in Float.random(in: 0..<1, using: &rng) } }
    }

    /// One forward pass with the given masking noise: the loss, the decoder's predictions [B, 1 + N, C·p·p] (row 0
    /// belongs to the class token; rows 1... are the patches in order, pixels ordered (row, column, channel)) and the
    /// mask [B][N] (1: hidden).
    public func forward(_ images: Tensor, noise: [[Float]]) throws -> (loss: Tensor, prediction: Tensor, mask: [[Float]]) {
        let c = configuration
        guard images.rank == 4, images.shape[1] == c.channels, images.shape[2] == c.imageSize, images.shape[3] == c.imageSize else {
            throw TensorError.shapeMismatch("the masked autoencoder (\(c.summary)) takes [batch, \(c.channels), \(c.imageSize), \(c.imageSize)], got \(images.shape)")
        }
        let b = images.shape[0], n = c.patchesPerImage, keep = c.keptPatches
        guard noise.count == b, noise.allSatisfy({ $0.count == n }) else { throw TensorError.shapeMismatch("noise for \(noise.count) samples of \(b)") }
        // argsort of the noise: the first `keep` are kept; restore[pos] = rank of pos in the shuffle.
        let shuffle = noise.map { row in row.indices.sorted { row[$0] < row[$1] || (row[$0] == row[$1] && $0 < $1) } }
        var restore = [[Int]](repeating: [Int](repeating: 0, count: n), count: b)
        var mask = [[Float]](repeating: [Float](repeating: 1, count: n), count: b)
        for s in 0..<b { for (rank, pos) in shuffle[s].enumerated() { restore[s][pos] = rank; if rank < keep { mask[s][pos] = 0 } } }

        let positions = try pos.sliced(axis: 1, 1..<(n + 1)).reshaped([n, c.width])
        var x = try images.patches(c.patch).linear(patchWeight, bias: patchBias) + positions
        x = try x.gatherTokens(shuffle.map { Array($0.prefix(keep)) })
        x = try x.prependingToken(cls + (try pos.sliced(axis: 1, 0..<1)))
        for block in blocks { x = try block(x) }
        x = try decEmbed(try norm(x))
        x = try Tensor.restoreTokens(x, maskToken: maskToken, restore: restore) + (try dpos.reshaped([n + 1, c.decoderWidth]))
        for block in dblocks { x = try block(x) }
        let predicted = try pred(try dnorm(x))                                       // [B, 1 + N, C·p·p]
        var target = try GradMode.disabled { try images.patches(c.patch, channelsLast: true) }.data
        if c.normalizedTargets { Self.normalizePatches(&target, size: c.channels * c.patch * c.patch) }
        let loss = try Tensor.maskedMSE(predicted, target: target, mask: mask)
        return (loss, predicted, mask)
    }

    /// Each patch's pixels to zero mean and unit (unbiased) variance, as the reference's norm_pix_loss.
    static func normalizePatches(_ v: inout [Float], size: Int) {
        for start in stride(from: 0, to: v.count, by: size) {
            let slice = v[start..<(start + size)]
            let mean = slice.reduce(0, +) / Float(size)
            let variance = slice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(1, size - 1))
            let inv = 1 / (variance + 1e-6).squareRoot()
            for i in start..<(start + size) { v[i] = (v[i] - mean) * inv }
        }
    }

    /// Embeddings [B, width] of images with nothing masked: the class token's output or the mean of the patch
    /// tokens' (after the encoder's final LayerNorm).
    public func embed(_ images: Tensor, pool: Pooling = .cls) throws -> Tensor {
        let c = configuration
        guard images.rank == 4, images.shape[1] == c.channels, images.shape[2] == c.imageSize, images.shape[3] == c.imageSize else {
            throw TensorError.shapeMismatch("the encoder (\(c.summary)) takes [batch, \(c.channels), \(c.imageSize), \(c.imageSize)], got \(images.shape)")
        }
        let n = c.patchesPerImage
        var x = try images.patches(c.patch).linear(patchWeight, bias: patchBias) + (try pos.sliced(axis: 1, 1..<(n + 1)).reshaped([n, c.width]))
        x = try x.prependingToken(cls + (try pos.sliced(axis: 1, 0..<1)))
        for block in blocks { x = try block(x) }
        x = try norm(x)
        switch pool {
        case .cls: return try x.sliced(axis: 1, 0..<1).reshaped([images.shape[0], c.width])
        case .mean: return try x.sliced(axis: 1, 1..<(n + 1)).mean(axes: [1])
        }
    }
}
