/// # MedMetrics
///
/// Segmentation metrics per label and per case, in millimetres from the reference image's spacing, and their
/// aggregation over cases and sites.
///
/// - Overlap: Dice, IoU (Jaccard), precision, sensitivity (recall).
/// - Surface distances, as MONAI's `compute_hausdorff_distance` / `compute_average_surface_distance` and MedPy:
///   the surface of a mask is its border voxels, `mask AND NOT erode(mask)` with the face-connected (cross)
///   structuring element and voxels outside the image counted as background. Directed distances go from each border
///   voxel of one mask to the nearest border voxel of the other, through an exact anisotropic Euclidean distance
///   transform (``MedImage/DistanceTransform``).
/// - Hausdorff (max) is the larger of the two directed maxima. HD95 by default is the larger of the two directed
///   95th percentiles (MONAI and DeepMind's surface-distance); ``HD95Pooling/pooled`` takes the 95th percentile of
///   both directed sets together (MedPy's `hd95`). Percentiles interpolate linearly (NumPy's default).
/// - ASSD: the mean of all directed distances of both directions together (MONAI `symmetric=True`, MedPy `assd`).
/// - Empty masks: chosen by ``EmptyMaskPolicy`` (defaults follow MONAI: a case whose reference and prediction are both
///   empty gives NaN Dice/IoU and NaN distances; one empty mask gives Dice 0 and infinite distances).
public enum MedMetricsModule {}
