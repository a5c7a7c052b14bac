/// # MedImage
///
/// The one image type of MedSelect and its geometry. A ``MedicalImage`` is Float32 voxels in NIfTI order
/// (i fastest, then j, k, then channel/time), a 4x4 voxel-to-world ``Affine`` in RAS+ millimetres, and a
/// ``MedicalImage/Kind`` (scalar intensities or an integer label map). Spacing, origin and orientation codes are
/// derived from the affine, never stored twice.
///
/// Operations on images: reorientation (``MedicalImage/reoriented(to:)``), resampling to a spacing, a shape or another
/// image's grid (antialiased; label maps always nearest), intensity clipping and normalisation, crop/pad, slicing and
/// stacking, label-map clean-up (components, largest component, hole filling, volumes) and the exact anisotropic
/// ``DistanceTransform``. Their conventions are written down in Docs/conventions.md.
///
/// Conventions (see Docs/DESIGN.md):
/// - World coordinates are NIfTI's RAS+: +x toward the patient's Right, +y Anterior, +z Superior, in mm. Axis codes
///   follow NiBabel's `aff2axcodes`: each letter names the direction in which the world coordinate increases along
///   that voxel axis.
/// - A 2-D image has `nz == 1`. PNG images: i runs along a row (width), j down the rows (height).
/// - Label maps hold integer values (0 = background) stored exactly in Float32 (|value| < 2^24).
///
/// This module depends on nothing but the standard library and Foundation; file formats live in MedFormats.
public enum MedImageModule {}
