import Foundation
import MedTensor
import MedFoundation

/// Which pretrained tensors fine-tuning starts from.
public enum InitPart: String, Sendable, CaseIterable {
    /// The contracting path and the bottleneck (`down.*`, `bottleneck.*`).
    case encoder
    /// Everything the file holds (a pretrained encoder-decoder: also `upconv.*` and `up.*`; a U-Net checkpoint: also
    /// its heads).
    case all

    public func includes(_ name: String) -> Bool {
        self == .all || name.hasPrefix("down.") || name.hasPrefix("bottleneck.")
    }
}

extension UNet {
    /// Copies pretrained tensors into this U-Net: those of `part` that `tensors` holds (a HSSL encoder file or a
    /// U-Net checkpoint). Every tensor of the part must be there with this network's shape; tensors outside the part
    /// (e.g. the segmentation head) keep their fresh initialisation. Returns the names loaded, sorted.
    @discardableResult
    public func initialize(from tensors: [String: Tensor], part: InitPart, origin: String) throws -> [String] {
        // The heads are loaded when the file has them (a U-Net checkpoint) and otherwise stay fresh (a pretrained file).
        func isHead(_ name: String) -> Bool { name.hasPrefix("head.") || name.hasPrefix("ds_heads.") }
        let own = (namedParameters + namedBuffers).filter { part.includes($0.0) && (!isHead($0.0) || tensors[$0.0] != nil) }
        var loaded: [String] = []
        for (name, t) in own {
            guard let source = tensors[name] else { throw TensorError.checkpoint(path: origin, reason: "lacks '\(name)', which --init-part \(part.rawValue) loads") }
            if name == "down.0.0.weight", source.rank == 4, t.rank == 4, source.shape[1] == 1, t.shape[1] > 1,
               source.shape[0] == t.shape[0], source.shape[2...] == t.shape[2...] {
                // A gray-pretrained first convolution for colour input: each input channel gets the gray kernel times
                // its luminance weight (BT.601 for 3 channels, 1/C otherwise), so that a colour image responds as
                // its luminance image did in pretraining.
                t.data = Self.expandGrayKernel(source.data, outputs: t.shape[0], channels: t.shape[1], kernel: t.shape[2] * t.shape[3])
                loaded.append(name)
                continue
            }
            guard source.shape == t.shape else { throw TensorError.checkpoint(path: origin, reason: "'\(name)' is \(source.shape), this U-Net needs \(t.shape)") }
            t.data = source.data
            loaded.append(name)
        }
        guard !loaded.isEmpty else { throw TensorError.checkpoint(path: origin, reason: "holds none of this U-Net's tensors") }
        return loaded.sorted()
    }

    /// Kernels [O, 1, k] of a gray first convolution as [O, C, k]: channel c gets the kernel times w_c, w = BT.601
    /// luminance weights (0.299, 0.587, 0.114) for C = 3, 1/C otherwise (the weights sum to 1).
    public static func expandGrayKernel(_ gray: [Float], outputs: Int, channels: Int, kernel: Int) -> [Float] {
        let w: [Float] = channels == 3 ? [0.299, 0.587, 0.114] : [Float](repeating: 1 / Float(channels), count: channels)
        var out = [Float](repeating: 0, count: outputs * channels * kernel)
        for o in 0..<outputs { for c in 0..<channels { for k in 0..<kernel { out[(o * channels + c) * kernel + k] = gray[o * kernel + k] * w[c] } } }
        return out
    }
}
