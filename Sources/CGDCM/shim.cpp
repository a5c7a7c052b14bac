#include "cgdcm.h"
#include <gdcmImageReader.h>
#include <gdcmReader.h>
#include <gdcmTrace.h>
#include <gdcmImageHelper.h>
#include <gdcmImage.h>
#include <gdcmImageChangePhotometricInterpretation.h>
#include <gdcmImageChangePlanarConfiguration.h>
#include <gdcmImageApplyLookupTable.h>
#include <gdcmAttribute.h>
#include <gdcmTransferSyntax.h>
#include <cstring>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <string>

static void fail(char *message, size_t size, const std::string &text) {
    if (message && size) { std::strncpy(message, text.c_str(), size - 1); message[size - 1] = 0; }
}

/* Debian's GDCM is built with assertions, and its image reader asserts (aborting the process) on some inconsistent
   multi-frame headers instead of failing: a Frame Increment Pointer (0028,0009) naming an element the file lacks, or
   naming Grid Frame Offset Vector (3004,000C) without Number of Frames (0028,0008) (gdcm::ImageHelper reads both;
   pydicom's rtdose_1frame.dcm). A plain header read first refuses those with a reason. */
static bool consistentFrames(const char *path, char *message, size_t size) {
    // GDCM's own warnings and errors go to stderr; the caller reports one line with the reason instead.
    gdcm::Trace::SetWarning(false); gdcm::Trace::SetError(false); gdcm::Trace::SetDebug(false);
    // As ITK's GDCMImageIO (what SimpleITK reads with) sets them: pixel spacing and rescale taken from the attributes
    // whatever the SOP class (secondary captures included).
    gdcm::ImageHelper::SetForcePixelSpacing(true);
    gdcm::ImageHelper::SetForceRescaleInterceptSlope(true);
    gdcm::Reader header;
    header.SetFileName(path);
    if (!header.Read()) { fail(message, size, "not a DICOM file GDCM can read (a damaged or truncated header)"); return false; }
    const gdcm::DataSet &ds = header.GetFile().GetDataSet();
    const gdcm::Tag pointer(0x0028, 0x0009);
    if (!ds.FindDataElement(pointer)) return true;
    const gdcm::ByteValue *bv = ds.GetDataElement(pointer).GetByteValue();
    if (!bv || bv->GetLength() % 4 != 0) { fail(message, size, "its Frame Increment Pointer (0028,0009) is not a list of tags"); return false; }
    const bool little = header.GetFile().GetHeader().GetDataSetTransferSyntax() != gdcm::TransferSyntax::ExplicitVRBigEndian;
    for (uint32_t k = 0; k < bv->GetLength() / 4; k++) {
        const unsigned char *b = reinterpret_cast<const unsigned char *>(bv->GetPointer()) + 4 * k;
        uint16_t group = little ? uint16_t(b[0] | b[1] << 8) : uint16_t(b[0] << 8 | b[1]);
        uint16_t element = little ? uint16_t(b[2] | b[3] << 8) : uint16_t(b[2] << 8 | b[3]);
        gdcm::Tag named(group, element);
        char text[64];
        if (!ds.FindDataElement(named)) {
            std::snprintf(text, sizeof(text), "(%04X,%04X)", group, element);
            fail(message, size, std::string("its Frame Increment Pointer names ") + text + ", which the file does not have");
            return false;
        }
        if (named == gdcm::Tag(0x3004, 0x000C) && !ds.FindDataElement(gdcm::Tag(0x0028, 0x0008))) {
            fail(message, size, "its frames are spaced by Grid Frame Offset Vector (3004,000C) but it has no Number of Frames (0028,0008)");
            return false;
        }
    }
    return true;
}

/* The image as the project wants it: YBR colour converted to RGB, colour interleaved. */
static bool prepared(const char *path, gdcm::ImageReader &reader, gdcm::Image &out, char *message, size_t size) {
    if (!consistentFrames(path, message, size)) return false;
    reader.SetFileName(path);
    if (!reader.Read()) { fail(message, size, "not a DICOM image GDCM can read (no pixel data, or a damaged header)"); return false; }
    // GDCM's filters hold their input by a reference-counted pointer: their input must be an image GDCM owns (the
    // reader's, a filter's output), never a copy on our stack, or the filter frees it when it goes (a crash on
    // pydicom's ExplVR_BigEnd.dcm). Both filters live until the result is copied out.
    gdcm::ImageChangePhotometricInterpretation photometric;
    gdcm::ImageChangePlanarConfiguration planar;
    gdcm::ImageApplyLookupTable palette;
    const gdcm::Image *current = &reader.GetImage();
    gdcm::PhotometricInterpretation pi = current->GetPhotometricInterpretation();
    // Palette colour becomes RGB through its lookup table, as SimpleITK gives it.
    if (pi == gdcm::PhotometricInterpretation::PALETTE_COLOR) {
        palette.SetInput(*current);
        if (!palette.Apply()) { fail(message, size, "its palette colour lookup table could not be applied"); return false; }
        current = &palette.GetOutput();
        pi = current->GetPhotometricInterpretation();
    }
    if (pi == gdcm::PhotometricInterpretation::YBR_FULL || pi == gdcm::PhotometricInterpretation::YBR_FULL_422) {
        photometric.SetInput(*current);
        photometric.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::RGB);
        if (!photometric.Change()) { fail(message, size, "YBR colour could not be converted to RGB"); return false; }
        current = &photometric.GetOutput();
    }
    if (current->GetPixelFormat().GetSamplesPerPixel() == 3 && current->GetPlanarConfiguration() == 1) {
        planar.SetInput(*current);
        planar.SetPlanarConfiguration(0);
        if (!planar.Change()) { fail(message, size, "planar colour could not be interleaved"); return false; }
        current = &planar.GetOutput();
    }
    out = *current;
    return true;
}

extern "C" int cgdcm_read_info(const char *path, cgdcm_info *info, char *message, size_t size) {
    try {
        gdcm::ImageReader reader;
        gdcm::Image image;
        if (!prepared(path, reader, image, message, size)) return 1;
        std::memset(info, 0, sizeof(*info));
        const unsigned int *dims = image.GetDimensions();
        info->columns = dims[0];
        info->rows = dims[1];
        info->frames = image.GetNumberOfDimensions() > 2 ? dims[2] : 1;
        gdcm::PixelFormat pf = image.GetPixelFormat();
        info->samples_per_pixel = pf.GetSamplesPerPixel();
        info->bits_allocated = pf.GetBitsAllocated();
        info->bits_stored = pf.GetBitsStored();
        info->pixel_representation = pf.GetPixelRepresentation();
        std::strncpy(info->photometric, gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation()), sizeof(info->photometric) - 1);
        info->planar_configuration = image.GetPlanarConfiguration();
        info->slope = image.GetSlope();
        info->intercept = image.GetIntercept();
        const gdcm::DataSet &ds = reader.GetFile().GetDataSet();
        info->has_rescale = ds.FindDataElement(gdcm::Tag(0x0028, 0x1053)) || ds.FindDataElement(gdcm::Tag(0x0028, 0x1052));
        const double *sp = image.GetSpacing();
        const double *o = image.GetOrigin();
        const double *d = image.GetDirectionCosines();
        for (int i = 0; i < 3; i++) { info->spacing[i] = sp[i]; info->origin[i] = o[i]; }
        for (int i = 0; i < 6; i++) info->direction[i] = d[i];
        // Patient geometry at the top level, or in an enhanced multi-frame object's functional groups (which GDCM reads).
        info->has_patient_geometry = (ds.FindDataElement(gdcm::Tag(0x0020, 0x0032)) && ds.FindDataElement(gdcm::Tag(0x0020, 0x0037)))
            || ds.FindDataElement(gdcm::Tag(0x5200, 0x9229)) || ds.FindDataElement(gdcm::Tag(0x5200, 0x9230));
        // Without patient geometry SimpleITK takes PixelSpacing, else ImagerPixelSpacing, else 1 mm (GDCM alone may
        // leave 1 for secondary captures, or take an ultrasound region's calibration): row spacing is the second
        // axis, column spacing the first.
        if (!info->has_patient_geometry) {
            info->spacing[0] = 1; info->spacing[1] = 1;
            for (gdcm::Tag t : {gdcm::Tag(0x0028, 0x0030), gdcm::Tag(0x0018, 0x1164)}) {
                if (!ds.FindDataElement(t)) continue;
                const gdcm::ByteValue *bv = ds.GetDataElement(t).GetByteValue();
                if (!bv) continue;
                std::string text(bv->GetPointer(), bv->GetLength());
                double row = 0, column = 0;
                if (std::sscanf(text.c_str(), "%lf\\%lf", &row, &column) == 2 && row > 0 && column > 0) {
                    info->spacing[0] = column; info->spacing[1] = row;
                    break;
                }
            }
        }
        std::strncpy(info->transfer_syntax, gdcm::TransferSyntax::GetTSString(image.GetTransferSyntax()), sizeof(info->transfer_syntax) - 1);
        if (ds.FindDataElement(gdcm::Tag(0x0008, 0x0060))) {
            const gdcm::ByteValue *bv = ds.GetDataElement(gdcm::Tag(0x0008, 0x0060)).GetByteValue();
            if (bv) {
                std::string m(bv->GetPointer(), bv->GetLength());
                while (!m.empty() && (m.back() == ' ' || m.back() == 0)) m.pop_back();
                std::strncpy(info->modality, m.c_str(), sizeof(info->modality) - 1);
            }
        }
        info->buffer_length = image.GetBufferLength();
        return 0;
    } catch (const std::exception &e) {
        fail(message, size, std::string("GDCM: ") + e.what());
        return 1;
    } catch (...) {
        fail(message, size, "GDCM failed on this file");
        return 1;
    }
}

extern "C" int cgdcm_read_pixels(const char *path, void *buffer, size_t length, char *message, size_t size) {
    try {
        gdcm::ImageReader reader;
        gdcm::Image image;
        if (!prepared(path, reader, image, message, size)) return 1;
        if (image.GetBufferLength() != length) { fail(message, size, "the pixel data's size changed between reads"); return 1; }
        if (!image.GetBuffer(static_cast<char *>(buffer))) { fail(message, size, "the pixel data could not be decoded (damaged, or shorter than rows x columns x frames)"); return 1; }
        return 0;
    } catch (const std::exception &e) {
        fail(message, size, std::string("GDCM: ") + e.what());
        return 1;
    } catch (...) {
        fail(message, size, "GDCM failed on this file");
        return 1;
    }
}
