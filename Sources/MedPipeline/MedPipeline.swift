/// # MedPipeline
///
/// MedSelect's work in three folders, so that a newcomer finds each piece where its kind lives:
///
/// - `Records/`: what one stage writes and another reads, one Codable type per file, written and read only there:
///   ``Selection`` (selection.json), ``CaseScore`` (validation_metrics.csv), ``ResultRow`` (results.csv),
///   ``ExperimentResults`` (results.json), and the names parsed once: ``RunName``, ``Strategy``, ``Budget``.
/// - `Stages/`: one job each, called by a command or by the experiment runner alike: preparing cases for the U-Net,
///   training, prediction on each case's own grid, scoring and uncertainty (`Segmentation`, `SegmentationTraining`);
///   embedding cases (`CaseEmbedder`), in shards for clusters (`EmbeddingShards`); running a selection strategy
///   (`SelectionStage`); pretraining inputs (`PretrainingImages`); the site analysis (`SiteAnalysisStage`);
///   predictions.csv (`PredictionManifest`); one writer per output folder (`FolderLock`).
/// - `Experiment/`: the runner (nnU-Net style, apart from the stages it calls): a strictly validated JSON
///   configuration (`ExperimentConfig`, presets in `ExperimentPresets`), its items keyed by their inputs
///   (`ExperimentPlan`), a store that lets any number of workers share a run folder (`ItemStore`), the worker loop and
///   results (`Experiment`), the report (`ExperimentReport`), the budget advisor and the annotation worklist.
///
/// Dependencies point one way: Records <- Stages <- Experiment. Commands parse their options, call a stage and print.
public enum MedPipelineModule {}
