import Foundation
internal import CMedKernels

/// Parameters updated in place from their accumulated gradients.
public protocol Optimizer {
    var parameters: [Tensor] { get }
    var learningRate: Float { get set }
    mutating func step()
}

extension Optimizer {
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters { for g in p.grad ?? [] { total += Double(g * g) } }
    let norm = Float(total.squareRoot())
    if norm > maxNorm {
        let s = maxNorm / (norm + 1e-6)
        for p in parameters where p.grad != nil { p.grad = p.grad!.map { $0 * s } }
    }
    return norm
}

/// SGD with momentum (PyTorch's formulation: v = μ v + g; Nesterov: g + μ v) and L2 weight decay.
public struct SGD: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var momentum: Float
    public var nesterov: Bool
    public var weightDecay: Float
    var velocity: [[Float]]
    public init(_ parameters: [Tensor], learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.parameters = parameters; self.learningRate = learningRate; self.momentum = momentum; self.nesterov = nesterov
        self.weightDecay = weightDecay
        velocity = parameters.map { [Float](repeating: 0, count: $0.count) }
    }
    public mutating func step() {
        for (k, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            for i in 0..<p.count {
                var d = g[i] + weightDecay * p.data[i]
                if momentum != 0 {
                    velocity[k][i] = momentum * velocity[k][i] + d
                    d = nesterov ? d + momentum * velocity[k][i] : velocity[k][i]
                }
                p.data[i] -= learningRate * d
            }
        }
    }
}

/// Adam (Kingma & Ba) with bias correction; `decoupledWeightDecay` makes it AdamW (Loshchilov & Hutter).
public struct Adam: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var beta1: Float, beta2: Float, eps: Float
    public var weightDecay: Float
    public var decoupledWeightDecay: Bool
    /// Step count and moment estimates: the optimiser's state, saved in checkpoints.
    public var t = 0
    public var m: [[Float]], v: [[Float]]
    /// Whether weight decay applies to each parameter (all by default; transformers exempt biases, norms and tokens).
    public var decays: [Bool]

    public init(_ parameters: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        self.parameters = parameters; self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.weightDecay = weightDecay; self.decoupledWeightDecay = decoupledWeightDecay
        m = parameters.map { [Float](repeating: 0, count: $0.count) }
        v = m
        decays = [Bool](repeating: true, count: parameters.count)
    }

    public static func adamW(_ parameters: [Tensor], learningRate: Float = 1e-3, weightDecay: Float = 0.01) -> Adam {
        Adam(parameters, learningRate: learningRate, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public mutating func step() {
        t += 1
        let c1 = 1 - Foundation.pow(beta1, Float(t)), c2 = 1 - Foundation.pow(beta2, Float(t))
        let (b1, b2, lr, e, wd, decoupled) = (beta1, beta2, learningRate, eps, weightDecay, decoupledWeightDecay)
        for (k, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            g.withUnsafeBufferPointer { gb in p.data.withUnsafeMutableBufferPointer { db in
                m[k].withUnsafeMutableBufferPointer { mb in v[k].withUnsafeMutableBufferPointer { vb in
                    mk_adam(db.baseAddress!, gb.baseAddress!, mb.baseAddress!, vb.baseAddress!, db.count, b1, b2, lr, e, c1, c2,
                            decays[k] ? wd : 0, decoupled ? 1 : 0)
                } }
            } }
        }
    }
}

/// Learning-rate schedules (the rate for a 0-based step).
public enum LearningRateSchedule: Sendable {
    /// nnU-Net's poly decay: lr0 · (1 − step / total)^0.9.
    case poly(initial: Float, totalSteps: Int, exponent: Float = 0.9)
    /// Linear warm-up to lr0, then cosine decay to `minimum`.
    case cosine(initial: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0)

    public func rate(at step: Int) -> Float {
        switch self {
        case .poly(let lr, let total, let e):
            return lr * Foundation.pow(max(0, 1 - Float(step) / Float(max(1, total))), e)
        case .cosine(let lr, let warm, let total, let minimum):
            if step < warm { return lr * Float(step + 1) / Float(max(1, warm)) }
            let t = Float(step - warm) / Float(max(1, total - warm))
            return minimum + (lr - minimum) * 0.5 * (1 + cos(.pi * min(1, t)))
        }
    }
}
