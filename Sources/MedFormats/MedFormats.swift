/// # MedFormats
///
/// Readers and writers for the medical image formats MedSelect meets, producing ``MedImage/MedicalImage``:
///
/// | format | reader | writer | through |
/// |---|---|---|---|
/// | NIfTI-1 / NIfTI-2 (`.nii`, `.nii.gz`, `.hdr`/`.img`, `.img.gz`) | ``NIfTIReader`` | ``NIfTIWriter`` | libnifti (CNIfTI) |
/// | PNG (1-16 bit, gray, gray+alpha, RGB, RGBA, palette, Adam7) | ``PNGReader`` | ``PNGWriter`` | libpng (CPNG) |
/// | MetaImage (`.mhd` + `.raw`/`.zraw`, `.mha`) | ``MetaImageReader`` | ``MetaImageWriter`` | Swift + zlib |
/// | NumPy `.npy` (versions 1-3) | ``NPYReader`` | ``NPYWriter`` | Swift |
///
/// ``ImageIO`` detects the format by content and dispatches. Every failure is a ``FormatError`` carrying the path
/// and a reason a person can act on; sizes are checked against ``ReadOptions/maxBytes`` before any allocation, and
/// every writer writes a temporary file in the destination folder and renames it into place.
///
/// The `.npy` contract (what `medselect convert` writes), which makes cross-checks against Python readers exact:
/// NIfTI and MetaImage arrays have NiBabel's `get_fdata()` shape and element order (nx, ny, nz[, nt]); PNG arrays have
/// Pillow's `numpy.asarray(Image.open(p))` shape (height, width[, channels]) with integer types kept. See Docs/formats.md.
public enum MedFormatsModule {}
