import Foundation
import MedFoundation
import MedTensor
import Testing

// Checks shared by the tensor and network test suites.

/// Checks an operation's backward pass against central finite differences of a random projection of its output:
/// L(x) = Σ w ⊙ f(x), so dL/dx from backward() must match (L(x + h e_i) − L(x − h e_i)) / 2h, computed in Double from
/// Float forward passes.
public func gradientCheck(_ inputs: [Tensor], tolerance: Double = 2e-2, h: Float = 1e-2, _ f: ([Tensor]) throws -> Tensor,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    var g = SplitMix(state: 77)
    let probe = try f(inputs)
    let w = (0..<probe.count).map { _ in Float.random(in: -1...1, using: &g) }
    func loss(_ xs: [Tensor]) throws -> Double {
        let y = try GradMode.disabled { try f(xs) }
        return zip(y.data, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    for x in inputs { x.zeroGrad() }
    let y = try f(inputs)
    y.backward(seed: w)
    for (n, x) in inputs.enumerated() where x.requiresGrad {
        let analytic = x.grad ?? [Float](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let original = x.data[i]
            x.data[i] = original + h
            let up = try loss(inputs)
            x.data[i] = original - h
            let down = try loss(inputs)
            x.data[i] = original
            let numeric = (up - down) / (2 * Double(h))
            let err = abs(numeric - Double(analytic[i])) / max(1, abs(numeric))
            #expect(err < tolerance, "input \(n) element \(i): analytic \(analytic[i]), numeric \(numeric)", sourceLocation: sourceLocation)
        }
    }
}

public func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var g = SplitMix(state: seed)
    return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -scale...scale, using: &g) }, requiresGrad: true)
}
