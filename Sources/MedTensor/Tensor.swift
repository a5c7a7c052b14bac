import Foundation
import MedFoundation
import Synchronization
internal import CMedKernels

/// # MedTensor
///
/// Float32 tensors with reverse-mode automatic differentiation, for the networks MedSelect trains on CPUs.
///
/// A ``Tensor`` holds a shape and a contiguous row-major buffer (NCHW for images). Operations on tensors that require
/// gradients record a node on a tape: the inputs and a closure that turns the output's gradient into input gradients.
/// ``Tensor/backward()`` walks the recorded graph once in reverse topological order and accumulates `grad` on every
/// tensor that requires it. Inside ``GradMode/disabled(_:)`` nothing is recorded (inference).
///
/// Kernels: convolutions and transposed convolutions through oneDNN (in its blocked nChw8c or nChw16c layout, whichever
/// the processor's vectors hold, which activations keep from one operation to the next: see ``Layout``), im2col + SGEMM
/// as the reference path; matrix products through MedCompute's SGEMM; the other hot loops in CMedKernels, compiled for
/// AVX-512, AVX2 and the baseline and chosen at load time, and split over the cores on oneDNN's own threads. Every operation's backward
/// pass is checked against central finite differences in the tests.
public enum MedTensorModule {}

/// What can go wrong with tensors, by what the caller can do about it.
public enum TensorError: MedError, Sendable, Equatable {
    /// Shapes that do not fit an operation (a programming or configuration error upstream).
    case shapeMismatch(String)
    /// A compute library (oneDNN) refused or failed an operation it should run: the reason it gave.
    case backend(String)
    /// Weights that do not fit the model, or a checkpoint that cannot be used: the file and why.
    case checkpoint(path: String, reason: String)

    public var path: String {
        switch self {
        case .shapeMismatch: return "tensor shapes"
        case .backend: return "compute backend"
        case .checkpoint(let path, _): return path
        }
    }
    public var reason: String {
        switch self {
        case .shapeMismatch(let s), .backend(let s), .checkpoint(_, let s): return s
        }
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
///
/// Values are stored row-major (``Layout/plain``) or, for 4-D activations whose channel count is a multiple of the
/// block, in oneDNN's blocked nChw8c / nChw16c order (``Layout/blocked8``, ``Layout/blocked16``): convolutions,
/// normalisations, ReLU, pooling and channel concatenation pass blocked tensors on without converting them. ``data`` always reads (and writes) the plain
/// NCHW values; a blocked tensor converts on that access.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    /// The values in ``layout`` order.
    var storage: [Float]
    /// How ``storage`` is ordered.
    public private(set) var layout: Layout
    /// Changes (to a value no tensor has had) whenever the values change through ``data``: oneDNN's handles keep
    /// their converted copy of a weight tensor while its stamp stays the same (no reorder per call between updates).
    private(set) var stamp = Tensor.newStamp()
    private static let stamps = Atomic<UInt64>(1)
    static func newStamp() -> UInt64 { stamps.add(1, ordering: .relaxed).newValue }
    /// Accumulated gradient (same shape), after ``backward()``. Parameters and other leaves keep theirs in plain order;
    /// an intermediate result's gradient (released during the backward pass) is in its own layout.
    public var grad: [Float]?
    /// True for parameters and for results of operations on them.
    public private(set) var requiresGrad: Bool
    var node: GraphNode?

    /// The values in plain row-major (NCHW) order. Setting (or mutating) leaves the tensor plain (its gradient too).
    public var data: [Float] {
        get { Layout.convert(storage, shape: shape, from: layout, to: .plain) }
        set { makePlain(convertingValues: false); storage = newValue; stamp = Tensor.newStamp() }
        _modify {
            makePlain(convertingValues: true)
            stamp = Tensor.newStamp()
            yield &storage
        }
    }

    /// Switches to plain order, converting the stored values (unless they are about to be replaced) and the gradient.
    private func makePlain(convertingValues: Bool) {
        guard layout != .plain else { return }
        if convertingValues { storage = Layout.convert(storage, shape: shape, from: layout, to: .plain) }
        if let g = grad { grad = Layout.convert(g, shape: shape, from: layout, to: .plain) }
        layout = .plain
    }

    public init(shape: [Int], data: [Float], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == data.count,
                     "tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape
        self.storage = data
        self.layout = .plain
        self.requiresGrad = requiresGrad
    }

    init(shape: [Int], storage: [Float], layout: Layout, requiresGrad: Bool = false) {
        precondition(shape.reduce(1, *) == storage.count && layout.fits(shape),
                     "tensor of shape \(shape) cannot hold \(storage.count) values in \(layout)")
        self.shape = shape
        self.storage = storage
        self.layout = layout
        self.requiresGrad = requiresGrad
    }

    /// The same values in `target` order (self when already so); recorded in the graph like any operation.
    public func converted(to target: Layout) -> Tensor {
        if target == layout { return self }
        precondition(target.fits(shape), "\(shape) cannot be stored as \(target)")
        let values = Layout.convert(storage, shape: shape, from: layout, to: target)
        return Tensor.result(shape: shape, data: values, layout: target, inputs: [self]) { [self] g in accumulate(g, layout: target) }
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

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    /// The single value of a one-element tensor.
    public var item: Float { precondition(storage.count == 1, "item of a tensor with \(storage.count) values"); return storage[0] }
    public var description: String { "Tensor(\(shape))" }

    /// A tensor with the same values, outside the graph.
    public func detached() -> Tensor { Tensor(shape: shape, data: data) }

    /// Marks this tensor as a leaf that collects gradients (parameters).
    public func requiringGrad() -> Tensor { requiresGrad = true; return self }

    public func zeroGrad() { grad = nil }

    /// Adds `g` (ordered as `gLayout`) into this tensor's gradient, which is kept in the tensor's own layout.
    func accumulate(_ g: [Float], layout gLayout: Layout = .plain) {
        guard requiresGrad else { return }
        let g = Layout.convert(g, shape: shape, from: gLayout, to: layout)
        if grad == nil { grad = g; return }
        grad!.withUnsafeMutableBufferPointer { dst in
            g.withUnsafeBufferPointer { src in mk_add(dst.baseAddress!, src.baseAddress!, dst.baseAddress!, dst.count) }
        }
    }

    /// Makes the result of an operation: records the node when gradients are on and an input needs them.
    /// `data` is ordered as `layout`; the backward closure receives the output's gradient in the same order.
    static func result(shape: [Int], data: [Float], layout: Layout = .plain, inputs: [Tensor], backward: @escaping ([Float]) -> Void) -> Tensor {
        let needs = GradMode.isEnabled && inputs.contains { $0.requiresGrad }
        let t = Tensor(shape: shape, storage: data, layout: layout, requiresGrad: needs)
        if needs { t.node = GraphNode(inputs: inputs, backward: backward) }
        return t
    }

    /// Back-propagates from this tensor (a scalar loss, or with `seed` as the output gradient): every tensor in its
    /// graph that requires gradients accumulates its gradient; the graph is released afterwards.
    public func backward(seed: [Float]? = nil) {
        precondition(seed != nil || storage.count == 1, "backward() without a seed needs a scalar; got \(shape)")
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
