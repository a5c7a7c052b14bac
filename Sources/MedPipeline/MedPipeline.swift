/// # MedPipeline
///
/// The stages of MedSelect's work, shared by the commands and by experiments: preparing cases for the U-Net,
/// training runs, prediction on each case's own grid, scoring and uncertainty (`Segmentation`,
/// `SegmentationTraining`); embedding cases (`CaseEmbedder`), in shards for clusters (`EmbeddingShards`); running a selection strategy (`SelectionStage`);
/// pretraining inputs (`PretrainingImages`); and experiments: a strictly validated JSON configuration
/// (`ExperimentConfig`), its items keyed by their inputs (`ExperimentPlan`), a store that lets any number of workers
/// share a run folder (`ItemStore`), the worker loop and results (`Experiment`), and the report (`ExperimentReport`).
/// Commands parse their options, call a stage and print.
public enum MedPipelineModule {}
