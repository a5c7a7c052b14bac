import ArgumentParser
import Foundation
import MedFormats
import MedImage

struct Inspect: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Show an image's format, datatype, shape, spacing, affine, orientation and value range.",
        discussion: "Example: medselect inspect Samples/prostate/RUNMC/Case00.nii.gz --json"
    )

    @Argument(help: "Image file (NIfTI, PNG, MetaImage, NRRD, NPY or DICOM; detected by content), or a folder holding a DICOM series.")
    var file: String

    @Flag(help: "Print one JSON object (keys: format, datatype, shape, array_shape, spacing, affine, orientation, ...).")
    var json = false

    @OptionGroup var limits: ReadLimitOptions

    func run() throws {
        let format = try ImageIO.detect(file)
        var niftiHeader: NIfTIHeader? = nil
        let image: MedicalImage
        if format == .nifti {
            let (img, header) = try NIfTIReader.readWithHeader(file, options: limits.readOptions)
            image = img
            niftiHeader = header
        } else {
            image = try ImageIO.read(file, options: limits.readOptions)
        }
        var formatName = image.info.format ?? format.rawValue
        var zooms: [Double]? = nil
        var shape = image.shape.dimensions
        var extra: [String: Any] = [:]
        switch format {
        case .nifti:
            let h = niftiHeader!
            shape = h.dims
            zooms = Array(h.pixdim.prefix(h.dims.count))
            if h.isCompressed { formatName += " (gzip)" }
            if h.isPair { formatName += " (hdr/img pair)" }
            extra["qform_code"] = h.qformCode
            extra["sform_code"] = h.sformCode
            if let s = h.scaling { extra["scl_slope"] = s.slope; extra["scl_inter"] = s.inter }
        case .png:
            let h = try PNGReader.readHeader(file)
            extra["bit_depth"] = h.bitDepth
            extra["color_type"] = ["gray", "?", "rgb", "palette", "gray+alpha", "?", "rgba"][min(h.colorType, 6)]
            extra["interlaced"] = h.interlaced
        default:
            break
        }
        let arrayShape: [Int] = format == .png
            ? (image.shape.t == 1 ? [image.shape.y, image.shape.x] : [image.shape.y, image.shape.x, image.shape.t])
            : shape
        let stats = image.statistics
        let nonFinite = image.nonFiniteCounts
        let spacing = image.spacing
        if json {
            var obj: [String: Any] = [
                "path": file,
                "format": formatName,
                "datatype": image.info.storedType.rawValue,
                "shape": shape,
                "array_shape": arrayShape,
                "spacing": spacing,
                "spacing_known": image.info.spacingIsKnown,
                "origin": image.origin,
                "affine": image.affine.rows,
                "orientation": image.orientationCodes,
                "channels": image.info.components == .color ? image.shape.t : 1,
            ]
            if let z = zooms { obj["zooms"] = z }
            if let s = stats { obj["min"] = Double(s.min); obj["max"] = Double(s.max); obj["mean"] = s.mean }
            obj["nan_count"] = nonFinite.nan
            obj["inf_count"] = nonFinite.positiveInfinity + nonFinite.negativeInfinity
            for (k, v) in extra { obj[k] = v }
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        func f(_ v: Double) -> String { String(format: "%.6g", v) }
        print("file:         \(file)")
        print("format:       \(formatName)")
        print("datatype:     \(image.info.storedType.rawValue)")
        print("shape:        \(shape.map(String.init).joined(separator: " x "))")
        print("spacing:      \(spacing.map(f).joined(separator: " x ")) mm\(image.info.spacingIsKnown ? "" : " (unknown: file gives none)")")
        print("origin:       \(image.origin.map(f).joined(separator: ", ")) mm")
        print("orientation:  \(image.orientationCodes)")
        print("affine:")
        for row in image.affine.rows { print("  [" + row.map { String(format: "%10.4f", $0) }.joined(separator: " ") + " ]") }
        var notes: [String] = []
        if nonFinite.nan > 0 { notes.append("\(nonFinite.nan) NaN") }
        if nonFinite.positiveInfinity > 0 { notes.append("\(nonFinite.positiveInfinity) +inf") }
        if nonFinite.negativeInfinity > 0 { notes.append("\(nonFinite.negativeInfinity) -inf") }
        let extraNote = notes.isEmpty ? "" : " (finite values only; also \(notes.joined(separator: ", ")))"
        if let s = stats {
            print("values:       min \(f(Double(s.min))), max \(f(Double(s.max))), mean \(f(s.mean))\(extraNote)")
        } else {
            print("values:       no finite value (\(notes.joined(separator: ", ")))")
        }
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { print("\(k):\(String(repeating: " ", count: max(1, 13 - k.count)))\(v)") }
    }
}
