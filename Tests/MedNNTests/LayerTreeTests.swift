import Foundation
import Testing
import TestSupport
import MedNN
@testable import MedTensor
import MedFoundation

/// A two-level tree written for the test: a list of convolutions and a batch norm.
final class TinyNet: Layer {
    let convs: LayerList<Conv2d>
    let norm = BatchNorm2d(3)
    let scale = Tensor(shape: [1], data: [2], requiresGrad: true)
    var isTraining = true
    init() {
        var rng = SplitMix64(seed: 1)
        convs = LayerList([Conv2d(1, 3, kernel: 3, padding: 1, rng: &rng), Conv2d(3, 3, kernel: 1, bias: false, rng: &rng)])
    }
    var localParameters: [(String, Tensor)] { [("scale", scale)] }
    var children: [(String, any Layer)] { [("convs", convs), ("norm", norm)] }
}

@Suite("Layer tree")
struct LayerTreeTests {
    @Test("names, parameters, buffers and modes derive from the tree as PyTorch names them")
    func derived() throws {
        let net = TinyNet()
        #expect(net.namedParameters.map(\.0) == ["scale", "convs.0.weight", "convs.0.bias", "convs.1.weight", "norm.weight", "norm.bias"])
        #expect(net.namedBuffers.map(\.0) == ["norm.running_mean", "norm.running_var"])
        #expect(net.parameters.count == 6 && net.parameters[1] === net.convs[0].weight)
        #expect(Set(net.stateDict.keys).count == 8)
        net.setTraining(false)
        #expect(!net.isTraining && !net.convs.isTraining && !net.convs[1].isTraining && !net.norm.isTraining)
        net.setTraining(true)
        #expect(net.norm.isTraining)
    }

    @Test("loading a state dictionary: values arrive; missing, unexpected and misshapen tensors are refused with the name")
    func loading() throws {
        let a = TinyNet(), b = TinyNet()
        for (_, t) in a.stateDict { t.data = t.data.map { $0 + 1 } }
        try b.load(a.stateDict)
        for (name, t) in a.stateDict { #expect(b.stateDict[name]!.data == t.data, "\(name)") }
        var missing = a.stateDict
        missing["norm.running_var"] = nil
        #expect { try b.load(missing, origin: "w.safetensors") } throws: { "\($0)".contains("w.safetensors: lacks 1 of the model's 8 tensors (first: 'norm.running_var')") }
        var extra = a.stateDict
        extra["head.weight"] = Tensor(zeros: [1])
        #expect { try b.load(extra) } throws: { "\($0)".contains("the model does not have (first: 'head.weight')") }
        try b.load(extra, strict: false)
        var wrong = a.stateDict
        wrong["convs.1.weight"] = Tensor(zeros: [3, 3, 3, 3])
        #expect { try b.load(wrong) } throws: { "\($0)".contains("'convs.1.weight' is [3, 3, 3, 3], the model needs [3, 3, 1, 1]") }
    }

    @Test("a model file round trip: the description and every tensor; a file without a description is refused")
    func modelFile() throws {
        let scratch = Scratch("model-file"); defer { scratch.cleanup() }
        let unet = UNet(base: 2, levels: 2, normalization: .instance, deepSupervision: true, seed: 4)
        try ModelFile.write(unet, description: ModelDescription(unet: unet.configuration), metadata: ["note": "x"], to: scratch.file("m.safetensors"))
        let (tensors, description, metadata) = try ModelFile.read(scratch.file("m.safetensors"))
        #expect(description.unet == unet.configuration && metadata["note"] == "x")
        #expect(metadata["model"] == #"{"architecture":"unet","unet":{"base":2,"classes":2,"deep_supervision":true,"in_channels":1,"levels":2,"normalization":"instance"}}"#)
        let back = UNet(description.unet!, seed: 9)
        try back.load(tensors)
        for (name, t) in unet.stateDict { #expect(back.stateDict[name]!.data == t.data, "\(name)") }
        try Safetensors.write(["w": Tensor(zeros: [1])], to: scratch.file("plain.safetensors"))
        #expect { try ModelFile.read(scratch.file("plain.safetensors")) } throws: { "\($0)".contains("no model description") }
    }
}
