import Foundation
import MedTensor

/// What network a weights file holds: enough to rebuild it. Stored as JSON under the `model` key of the file's
/// metadata, e.g. `{"architecture": "unet", "unet": {"in_channels": 1, "classes": 2, ...}}`.
public struct ModelDescription: Sendable, Codable, Equatable {
    public var architecture: String
    public var unet: UNet.Configuration?
    /// A masked autoencoder ("mae", the whole model) or its encoder alone ("mae-encoder", what `embed` reads).
    public var mae: MaskedAutoencoder.Configuration?
    /// An HSSL pretraining network ("hssl", the whole model with its heads) or its pretrained U-Net alone ("hssl-unet",
    /// with `unet` set: what `train --init-from` and `embed --encoder` read).
    public var hssl: HSSLModel.Configuration?

    public init(unet: UNet.Configuration) { architecture = "unet"; self.unet = unet }
    public init(mae: MaskedAutoencoder.Configuration, encoderOnly: Bool = false) { architecture = encoderOnly ? "mae-encoder" : "mae"; self.mae = mae }
    public init(hssl: HSSLModel.Configuration) { architecture = "hssl"; self.hssl = hssl }
    public init(hsslEncoder: HSSLModel.Configuration) { architecture = "hssl-unet"; self.hssl = hsslEncoder; unet = hsslEncoder.unet }

    /// In words, for messages.
    public var summary: String {
        if architecture == "hssl-unet", let unet { return "HSSL-pretrained U-Net (\(unet.summary); no segmentation head)" }
        if let hssl { return "HSSL pretraining network (\(hssl.summary))" }
        if let unet { return "U-Net (\(unet.summary))" }
        if let mae { return (architecture == "mae-encoder" ? "MAE encoder (" : "masked autoencoder (") + mae.summary + ")" }
        return architecture
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The description in a file's metadata; `path` names the file in errors.
    public static func from(_ metadata: [String: String], path: String) throws -> ModelDescription {
        guard let text = metadata["model"] else {
            throw TensorError.checkpoint(path: path, reason: "no model description in its metadata: not written by medselect")
        }
        guard let d = try? JSONDecoder().decode(ModelDescription.self, from: Data(text.utf8)) else {
            throw TensorError.checkpoint(path: path, reason: "its model description is not one this medselect reads ('\(text.prefix(60))'); "
                                         + "files from medselect before the layer tree need retraining")
        }
        return d
    }
}

/// Weights files: the model's state dictionary under PyTorch's names (parameters and buffers, nothing else), so that
/// `model.load_state_dict(safetensors.torch.load_file(path))` loads it into the same PyTorch model; the model
/// description and anything else (training configuration, history) as strings in the metadata.
public enum ModelFile {
    public static func write(_ model: any Layer, description: ModelDescription, metadata: [String: String] = [:], to path: String) throws {
        var meta = metadata
        meta["model"] = description.json
        meta["format"] = "medselect-state-dict-1"
        try Safetensors.write(model.stateDict, metadata: meta, to: path)
    }

    /// The tensors, the model description and the metadata of a weights file.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], description: ModelDescription, metadata: [String: String]) {
        let (tensors, metadata) = try Safetensors.read(path)
        return (tensors, try ModelDescription.from(metadata, path: path), metadata)
    }
}

/// A training run's state in its folder: `checkpoint.safetensors` (a ``ModelFile`` whose metadata adds the epoch and
/// whatever the loop stores, e.g. configuration and history) and `optimizer-<epoch>.safetensors` (Adam's moments per
/// parameter, `exp_avg.<name>` and `exp_avg_sq.<name>`, and its step count). The optimiser file is written first and
/// older ones removed last, so a run killed at any moment leaves a checkpoint whose optimiser state is on disk.
public enum TrainingState {
    public static func checkpointPath(_ folder: String) -> String { folder + "/checkpoint.safetensors" }
    static func optimizerPath(_ folder: String, epoch: Int) -> String { folder + String(format: "/optimizer-%04d.safetensors", epoch) }

    public static func save(folder: String, model: any Layer, description: ModelDescription, optimizer: Adam, epoch: Int,
                            metadata: [String: String]) throws {
        let names = model.namedParameters.map(\.0)
        precondition(names.count == optimizer.m.count, "the optimiser holds other parameters than the model")
        var state: [String: Tensor] = [:]
        for (i, name) in names.enumerated() {
            state["exp_avg." + name] = Tensor(shape: [optimizer.m[i].count], data: optimizer.m[i])
            state["exp_avg_sq." + name] = Tensor(shape: [optimizer.v[i].count], data: optimizer.v[i])
        }
        try Safetensors.write(state, metadata: ["step": String(optimizer.t), "epoch": String(epoch)], to: optimizerPath(folder, epoch: epoch))
        var meta = metadata
        meta["epoch"] = String(epoch)
        try ModelFile.write(model, description: description, metadata: meta, to: checkpointPath(folder))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        where name.hasPrefix("optimizer-") && name.hasSuffix(".safetensors") && folder + "/" + name != optimizerPath(folder, epoch: epoch) {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// Removes the optimiser state files of a finished run (they only serve an exact resume); the checkpoint stays.
    public static func discardOptimizerState(folder: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        where name.hasPrefix("optimizer-") && name.hasSuffix(".safetensors") {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// Loads the model and the optimiser from a folder's checkpoint; returns the completed epochs and the metadata.
    public static func restore(folder: String, model: any Layer, optimizer: inout Adam) throws -> (epoch: Int, metadata: [String: String]) {
        let path = checkpointPath(folder)
        let (tensors, _, metadata) = try ModelFile.read(path)
        try model.load(tensors, origin: path)
        let epoch = Int(metadata["epoch"] ?? "") ?? 0
        let statePath = optimizerPath(folder, epoch: epoch)
        guard FileManager.default.fileExists(atPath: statePath) else {
            throw TensorError.checkpoint(path: statePath, reason: "missing: the optimiser state of epoch \(epoch) is needed to resume exactly")
        }
        let (state, stateMeta) = try Safetensors.read(statePath)
        for (i, name) in model.namedParameters.map(\.0).enumerated() {
            guard let m = state["exp_avg." + name], let v = state["exp_avg_sq." + name],
                  m.count == optimizer.m[i].count, v.count == optimizer.v[i].count else {
                throw TensorError.checkpoint(path: statePath, reason: "no optimiser state for '\(name)' of its size")
            }
            optimizer.m[i] = m.data; optimizer.v[i] = v.data
        }
        optimizer.t = Int(stateMeta["step"] ?? "") ?? 0
        return (epoch, metadata)
    }
}
