import ArgumentParser
import Foundation
import MedFormats
import MedImage

struct Convert: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Convert an image between NIfTI, PNG, MetaImage, NRRD and NPY (by OUT's extension); DICOM files and series in.",
        discussion: """
        To .npy: NIfTI/MetaImage give NiBabel's get_fdata() layout (nx, ny, nz[, nt]); PNG gives Pillow's \
        numpy.asarray(Image.open(p)) layout (height, width[, channels]); integer types are kept.
        Example: medselect convert Samples/prostate/RUNMC/Case00.nii.gz case00.npy
        With operations: medselect convert Case00.nii.gz ras.nii.gz --reorient RAS --spacing 0.6,0.6,3 --normalize zscore
        """
    )

    @Argument(help: "Input image.") var input: String
    @Argument(help: "Output path: .nii, .nii.gz, .hdr, .png, .mha, .mhd or .npy.") var output: String

    @Option(help: "Element type to store (uint8, int16, float32, ...); default keeps the input's.")
    var type: String?

    @Option(name: .customLong("bit-depth"), help: "PNG bit depth, 8 or 16 (default: from the values).")
    var bitDepth: Int?

    @Flag(help: "Compress MetaImage data with zlib.") var compress = false

    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup(title: "Operations (applied in this order)") var ops: PreprocessOptions

    func validate() throws {
        if let t = type, VoxelType(rawValue: t) == nil {
            throw ValidationError("--type must be one of \(VoxelType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let b = bitDepth, b != 8 && b != 16 { throw ValidationError("--bit-depth must be 8 or 16") }
    }

    func run() throws {
        let options = ImageIO.WriteOptions(storedType: type.flatMap(VoxelType.init(rawValue:)), pngBitDepth: bitDepth,
                                           compress: compress)
        if ops.isEmpty {
            try ImageIO.convert(input, to: output, options: options, readOptions: limits.readOptions)
        } else {
            let image = try ImageIO.read(input, options: limits.readOptions)
            let result: MedicalImage
            do { result = try ops.apply(image) } catch let error as ImageError { throw CommandError(subject: input, reason: error.description) }
            try ImageIO.write(result, to: output, options: options)
        }
        FileHandle.standardError.write(Data("wrote \(output)\n".utf8))
    }
}
