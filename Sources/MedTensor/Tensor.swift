import Foundation

/// # MedTensor
///
/// Float32 tensors with reverse-mode automatic differentiation, for the networks MedSelect trains on CPUs.
///
/// A ``Tensor`` holds a shape and a contiguous row-major buffer (NCHW for images). Operations on tensors that require
/// gradients record a node on a tape: the inputs and a closure that turns the output's gradient into input gradients.
/// ``Tensor/backward()`` walks the recorded graph once in reverse topological order and accumulates `grad` on every
/// tensor that requires it. Inside ``GradMode/disabled(_:)`` nothing is recorded (inference).
///
/// Kernels: matrix products through OpenBLAS; convolutions as im2col + SGEMM; element-wise loops vectorised and split
/// over the cores. Every operation's backward pass is checked against central finite differences in the tests.
public enum MedTensorModule {}

/// Errors a caller can fix (shapes that do not fit).
public enum TensorError: Error, Sendable, Equatable, CustomStringConvertible {
    case shapeMismatch(String)
    public var description: String {
        switch self { case .shapeMismatch(let s): return "tensor shapes: \(s)" }
    }
}

/// Whether operations record the graph (off for inference).
public enum GradMode {
    @TaskLocal public static var isEnabled = true

    /// Runs `body` without recording gradients.
    public static func disabled<T>(_ body: () throws -> T) rethrows -> T {
        try $isEnabled.withValue(false) { try body() }
    }
}

/// A node of the recorded graph: the inputs of an operation and how to send the output's gradient back to them.
final class GraphNode {
    let inputs: [Tensor]
    /// Receives the output's gradient; adds into the inputs' gradients.
    let backward: ([Float]) -> Void
    init(inputs: [Tensor], backward: @escaping ([Float]) -> Void) {
        self.inputs = inputs
        self.backward = backward
    }
}

/// An n-dimensional Float32 array with an optional gradient.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public var data: [Float]
    /// Accumulated gradient (same shape), after ``backward()``.
    public var grad: [Float]?
    /// True for parameters and for results of operations on them.
    public private(set) var requiresGrad: Bool
    var node: GraphNode?

    public init(shape: [Int], data: [Float], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == data.count,
                     "tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape
        self.data = data
        self.requiresGrad = requiresGrad
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)), requiresGrad: requiresGrad)
    }

    public convenience init(scalar: Float) { self.init(shape: [], data: [scalar]) }

    /// Values drawn from N(0, std²) with a seeded generator.
    public convenience init<G: RandomNumberGenerator>(randomNormal shape: [Int], std: Float = 1, generator: inout G, requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            let u1 = max(Float.random(in: 0..<1, using: &generator), 1e-12), u2 = Float.random(in: 0..<1, using: &generator)
            let r = (-2 * Foundation.log(u1)).squareRoot() * std
            values[i] = r * cos(2 * .pi * u2)
            if i + 1 < n { values[i + 1] = r * sin(2 * .pi * u2) }
            i += 2
        }
        self.init(shape: shape, data: values, requiresGrad: requiresGrad)
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    /// The single value of a one-element tensor.
    public var item: Float { precondition(data.count == 1, "item of a tensor with \(data.count) values"); return data[0] }
    public var description: String { "Tensor(\(shape))" }

    /// A tensor with the same values, outside the graph.
    public func detached() -> Tensor { Tensor(shape: shape, data: data) }

    /// Marks this tensor as a leaf that collects gradients (parameters).
    public func requiringGrad() -> Tensor { requiresGrad = true; return self }

    public func zeroGrad() { grad = nil }

    /// Adds `g` into this tensor's gradient.
    func accumulate(_ g: [Float]) {
        guard requiresGrad else { return }
        if grad == nil { grad = g; return }
        grad!.withUnsafeMutableBufferPointer { dst in
            g.withUnsafeBufferPointer { src in
                for i in 0..<dst.count { dst[i] += src[i] }
            }
        }
    }

    /// Makes the result of an operation: records the node when gradients are on and an input needs them.
    static func result(shape: [Int], data: [Float], inputs: [Tensor], backward: @escaping ([Float]) -> Void) -> Tensor {
        let needs = GradMode.isEnabled && inputs.contains { $0.requiresGrad }
        let t = Tensor(shape: shape, data: data, requiresGrad: needs)
        if needs { t.node = GraphNode(inputs: inputs, backward: backward) }
        return t
    }

    /// Back-propagates from this tensor (a scalar loss, or with `seed` as the output gradient): every tensor in its
    /// graph that requires gradients accumulates its gradient; the graph is released afterwards.
    public func backward(seed: [Float]? = nil) {
        precondition(seed != nil || data.count == 1, "backward() without a seed needs a scalar; got \(shape)")
        // Reverse topological order by an iterative depth-first search.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, done) = stack.popLast() {
            if done { order.append(t); continue }
            guard visited.insert(ObjectIdentifier(t)).inserted else { continue }
            stack.append((t, true))
            for i in t.node?.inputs ?? [] where i.requiresGrad && !visited.contains(ObjectIdentifier(i)) { stack.append((i, false)) }
        }
        accumulate(seed ?? [1])
        for t in order.reversed() {
            guard let node = t.node, let g = t.grad else { continue }
            node.backward(g)
            t.node = nil
            // Intermediate results pass their gradient on and drop it; leaves (parameters, inputs) keep theirs.
            if t !== self { t.grad = nil }
        }
    }
}
