#include "cgdcm.h"
#include <gdcmImageReader.h>
#include <gdcmReader.h>
#include <gdcmTrace.h>
#include <gdcmImageHelper.h>
#include <gdcmImage.h>
#include <gdcmImageChangePlanarConfiguration.h>
#include <gdcmImageApplyLookupTable.h>
#include <gdcmAttribute.h>
#include <gdcmStringFilter.h>
#include <gdcmTransferSyntax.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <type_traits>
#include <cstring>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <mutex>
#include <csignal>
#include <unistd.h>
#include <set>
#include <string>
#include <fcntl.h>
#include <unistd.h>

/* The codecs GDCM calls (OpenJPEG, libjpeg, CharLS) print their own complaints on stderr; a damaged file must reach
   the user as one line with the reason. While any GDCM call runs, file descriptor 2 points at a scratch file (the
   first caller redirects, the last one restores, so reads on several threads proceed together), and the first line
   written there is added to the error when decoding fails and no other read shared the window. Other threads' stderr
   lines written in that window land in the scratch file too. */
class QuietStderr {
    struct Shared { std::mutex lock; int users = 0, saved = -1; FILE *scratch = nullptr; };
    static Shared &shared() { static Shared s; return s; }
    bool alone = true;
public:
    QuietStderr() {
        Shared &s = shared();
        std::lock_guard<std::mutex> g(s.lock);
        if (s.users == 0) {
            fflush(stderr);
            s.scratch = tmpfile();
            s.saved = s.scratch ? dup(2) : -1;
            if (s.saved >= 0) dup2(fileno(s.scratch), 2);
        } else {
            alone = false;
        }
        s.users += 1;
    }
    /* The real stderr while it is redirected, else -1 (read by the abort handler, without the lock). */
    static int savedDescriptor() { return shared().saved; }
    /* The first line the codecs wrote, if this read had the window to itself. */
    std::string firstLine() {
        Shared &s = shared();
        std::lock_guard<std::mutex> g(s.lock);
        if (!alone || s.users != 1 || !s.scratch) return "";
        fflush(stderr);
        char line[256] = {0};
        long at = ftell(s.scratch);
        rewind(s.scratch);
        std::string text = fgets(line, sizeof(line), s.scratch) ? std::string(line) : std::string();
        fseek(s.scratch, at, SEEK_SET);
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
        return text;
    }
    ~QuietStderr() {
        Shared &s = shared();
        std::lock_guard<std::mutex> g(s.lock);
        s.users -= 1;
        if (s.users == 0) {
            fflush(stderr);
            if (s.saved >= 0) { dup2(s.saved, 2); close(s.saved); s.saved = -1; }
            if (s.scratch) { fclose(s.scratch); s.scratch = nullptr; }
        }
    }
};

/* YBR_FULL / YBR_FULL_422 8-bit samples to RGB in place, full range (PS3.3 C.7.6.3.1.2): R = Y + 1.402 Cr',
   G = Y - (0.114 * 1.772 / 0.587) Cb' - (0.299 * 1.402 / 0.587) Cr', B = Y + 1.772 Cb' with Cb' = Cb - 128 and
   Cr' = Cr - 128, in single precision, rounded half up and clipped to 0...255: what SimpleITK and pydicom give. */
static void ybrToRGB(unsigned char *p, size_t length) {
    const float gb = -0.114f * 1.772f / 0.587f, gr = -0.299f * 1.402f / 0.587f;
    auto clip = [](float v) { v = std::floor(v + 0.5f); return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v); };
    for (size_t x = 0; x + 2 < length; x += 3) {
        const float y = p[x], cb = float(p[x + 1]) - 128, cr = float(p[x + 2]) - 128;
        p[x] = clip(y + 1.402f * cr);
        p[x + 1] = clip(y + gb * cb + gr * cr);
        p[x + 2] = clip(y + 1.772f * cb);
    }
}

static bool isYBR(const gdcm::Image &image) {
    gdcm::PhotometricInterpretation pi = image.GetPhotometricInterpretation();
    return (pi == gdcm::PhotometricInterpretation::YBR_FULL || pi == gdcm::PhotometricInterpretation::YBR_FULL_422)
        && image.GetPixelFormat().GetSamplesPerPixel() == 3 && image.GetPixelFormat().GetBitsAllocated() == 8;
}

static void fail(char *message, size_t size, const std::string &text) {
    if (message && size) { std::strncpy(message, text.c_str(), size - 1); message[size - 1] = 0; }
}

/* One of the value representations of PS3.5 6.2 (GDCM asserts on any other in the file meta group). */
static bool knownVR(const unsigned char *v) {
    static const char *const all[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
                                      "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
                                      "UT", "UV"};
    for (const char *vr : all) if (v[0] == (unsigned char)vr[0] && v[1] == (unsigned char)vr[1]) return true;
    return false;
}

enum Walk { Fits, Overrun, WrongForm };

/* The data set's elements, walked from `at` to the end of the file in one encoding: Overrun when an element's or
   item's defined length runs past the end or the pixel data's fragment list is garbled, WrongForm when an explicit VR
   walk meets an unknown VR (the data may be implicit VR under an explicit header). Sequences and items of
   undefined length are stepped into, so nested elements are checked too; the walk ends at the first Pixel Data
   element: native data is checked on its own, encapsulated data's fragment items here. */
static Walk walkElements(FILE *f, long at, long end, bool explicitVR, bool bigEndian) {
    auto u16 = [&](const unsigned char *b) { return bigEndian ? uint16_t(b[0] << 8 | b[1]) : uint16_t(b[0] | b[1] << 8); };
    auto u32 = [&](const unsigned char *b) {
        return bigEndian ? uint32_t(uint32_t(b[0]) << 24 | b[1] << 16 | b[2] << 8 | b[3]) : uint32_t(b[0] | b[1] << 8 | b[2] << 16 | uint32_t(b[3]) << 24);
    };
    for (int count = 0; count < 100000 && at < end; count++) {
        unsigned char e[12];
        std::fseek(f, at, SEEK_SET);
        const size_t n = std::fread(e, 1, 12, f);
        if (n < 8) return n == 0 ? Fits : Overrun;
        const uint16_t group = u16(e), element = u16(e + 2);
        if (group == 0x7fe0 && element == 0x0010) {
            // A defined length must fit (native data's length against rows x columns is checked on its own);
            // encapsulated data is a list of fragment items up to a sequence delimiter, each of which must fit
            // (GDCM's codecs trusted a garbled fragment list, and a length of 4 GB).
            const long header = explicitVR ? 12 : 8;
            if (n < size_t(header)) return Overrun;
            const uint32_t length = explicitVR ? u32(e + 8) : u32(e + 4);
            if (length != 0xffffffffu) return at + header + long(length) > end ? Overrun : Fits;
            at += header;
            for (int items = 0; items < 1000000; items++) {
                unsigned char h[8];
                std::fseek(f, at, SEEK_SET);
                if (std::fread(h, 1, 8, f) < 8) return Overrun;
                const uint16_t g = u16(h), el = u16(h + 2);
                const uint32_t length = u32(h + 4);
                if (g == 0xfffe && el == 0xe0dd) return Fits;
                if (g != 0xfffe || el != 0xe000 || length == 0xffffffffu || at + 8 + long(length) > end) return Overrun;
                at += 8 + long(length);
            }
            return Overrun;
        }
        uint64_t length;
        long header;
        if (group == 0xfffe) {   // an item or a delimiter: tag and a 4-byte length, no VR in either encoding
            length = u32(e + 4);
            if (element == 0xe000) {   // step into the item
                if (length != 0xffffffffu && at + 8 + long(length) > end) return Overrun;
                at += 8;
                continue;
            }
            at += 8;
            continue;
        }
        if (explicitVR) {
            if (!knownVR(e + 4)) return WrongForm;
            const std::string vr(reinterpret_cast<const char *>(e + 4), 2);
            const bool longForm = vr == "OB" || vr == "OW" || vr == "OF" || vr == "SQ" || vr == "UT" || vr == "UN" || vr == "UC" || vr == "UR"
                || vr == "OD" || vr == "OL" || vr == "OV" || vr == "SV" || vr == "UV";
            if (longForm) {
                if (n < 12) return Overrun;
                length = u32(e + 8);
                header = 12;
            } else {
                length = u16(e + 6);
                header = 8;
            }
        } else {
            length = u32(e + 4);
            header = 8;
        }
        if (length == 0xffffffffu) { at += header; continue; }   // a sequence of undefined length: its items follow
        if (at + header + long(length) > end) return Overrun;
        at += header + long(length);
    }
    return Fits;
}

/* Debian's GDCM asserts (aborting the process) on a file meta information group that ends early or is malformed
   (gdcmFileMetaInformation.cxx:436, "Should not happen", on a file cut inside group 0002). The group is walked here
   first: explicit VR little endian elements, each inside the file. Files without the preamble are left to GDCM. */
static bool fileMetaSane(const char *path, char *message, size_t size) {
    FILE *f = std::fopen(path, "rb");
    if (!f) { fail(message, size, "cannot be opened"); return false; }
    unsigned char head[132];
    const size_t got = std::fread(head, 1, sizeof(head), f);
    std::fseek(f, 0, SEEK_END);
    const long end = std::ftell(f);
    if (got < 132 || std::memcmp(head + 128, "DICM", 4) != 0) {
        // No file meta information (ACR-NEMA): GDCM guesses the encoding; so do we, refusing only what fits neither.
        const bool fits = walkElements(f, 0, end, false, false) == Fits || walkElements(f, 0, end, true, false) == Fits;
        std::fclose(f);
        if (!fits) fail(message, size, "an element's length runs past the end of the file, or its pixel data fragments are garbled (a damaged or truncated file)");
        return fits;
    }
    long at = 132;
    std::string syntax;
    bool ok = true;
    int elements = 0;
    const char *reason = "";
    while (true) {
        unsigned char e[12];
        std::fseek(f, at, SEEK_SET);
        const size_t n = std::fread(e, 1, 12, f);
        if (n < 2) { ok = elements > 0; reason = "the file ends inside its file meta information"; break; }
        const uint16_t group = uint16_t(e[0] | e[1] << 8);
        if (group != 0x0002) {
            // GDCM asserts when the marker is followed by no meta element at all.
            if (elements == 0) { ok = false; reason = "no file meta information follows its DICM marker"; }
            break;
        }
        if (n < 8) { ok = false; reason = "the file ends inside its file meta information"; break; }
        if (!knownVR(e + 4)) { ok = false; reason = "its file meta information is not explicit VR little endian (an unknown VR)"; break; }
        const std::string vr(reinterpret_cast<const char *>(e + 4), 2);
        const bool longForm = vr == "OB" || vr == "OW" || vr == "OF" || vr == "SQ" || vr == "UT" || vr == "UN" || vr == "UC" || vr == "UR"
            || vr == "OD" || vr == "OL" || vr == "OV" || vr == "SV" || vr == "UV";
        uint64_t length;
        long header;
        if (longForm) {
            if (n < 12) { ok = false; reason = "the file ends inside its file meta information"; break; }
            length = uint32_t(e[8] | e[9] << 8 | e[10] << 16 | uint32_t(e[11]) << 24);
            header = 12;
        } else {
            length = uint16_t(e[6] | e[7] << 8);
            header = 8;
        }
        if (length == 0xffffffffu || at + header + long(length) > end) { ok = false; reason = "an element of its file meta information runs past the end of the file"; break; }
        const uint16_t element = uint16_t(e[2] | e[3] << 8);
        if (element == 0x0010 && length < 128) {   // TransferSyntaxUID
            char uid[128];
            std::fseek(f, at + header, SEEK_SET);
            const size_t k = std::fread(uid, 1, size_t(length), f);
            syntax.assign(uid, k);
            while (!syntax.empty() && (syntax.back() == '\0' || syntax.back() == ' ')) syntax.pop_back();
        }
        at += header + long(length);
        elements += 1;
    }
    // The data set's elements must fit in the file: GDCM allocates a value's declared length before reading it, so
    // a few bytes claiming 4 GB made it take gigabytes (fuzzing found such files). Walked in the declared encoding;
    // in implicit VR instead when an explicit walk meets an unknown VR, because GDCM reads files whose header names
    // the wrong form (SC_rgb_jpeg.dcm); deflated data sets are left to GDCM.
    if (ok && syntax != "1.2.840.10008.1.2.1.99") {
        const bool declaredExplicit = syntax != "1.2.840.10008.1.2";
        const bool bigEndian = syntax == "1.2.840.10008.1.2.2";
        Walk walk = walkElements(f, at, end, declaredExplicit, bigEndian);
        if (walk == WrongForm) walk = walkElements(f, at, end, false, false);
        if (walk != Fits) {
            ok = false;
            reason = "an element's length runs past the end of the file, or its pixel data fragments are garbled (a damaged or truncated file)";
        }
    }
    std::fclose(f);
    if (!ok) fail(message, size, reason);
    return ok;
}

/* Native (not encapsulated) pixel data that the file ends inside, or shorter than rows x columns x frames x samples:
   GDCM reads such a file and pads it (pydicom's MR_truncated.dcm, with a warning on stderr only); SimpleITK and
   pydicom refuse it, and so do we. `position` is where the header read stopped, at the Pixel Data element's value:
   its declared length (just before) and the bytes the file has from there on are checked. */
static bool nativePixelDataComplete(const char *path, const gdcm::File &file, size_t position, char *message, size_t size) {
    const gdcm::DataSet &ds = file.GetDataSet();
    const gdcm::TransferSyntax ts = file.GetHeader().GetDataSetTransferSyntax();
    if (ts.IsEncapsulated() || ts == gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian) return true;
    auto number = [&](uint16_t group, uint16_t element, bool text) -> uint64_t {
        const gdcm::Tag t(group, element);
        if (!ds.FindDataElement(t)) return 0;
        const gdcm::ByteValue *v = ds.GetDataElement(t).GetByteValue();
        if (!v || v->GetLength() == 0) return 0;
        if (text) return uint64_t(std::strtoull(std::string(v->GetPointer(), v->GetLength()).c_str(), nullptr, 10));
        const unsigned char *b = reinterpret_cast<const unsigned char *>(v->GetPointer());
        return v->GetLength() >= 2 ? uint64_t(b[0] | b[1] << 8) : 0;   // GDCM holds values little-endian
    };
    const uint64_t rows = number(0x0028, 0x0010, false), columns = number(0x0028, 0x0011, false);
    const uint64_t samples = std::max<uint64_t>(1, number(0x0028, 0x0002, false)), bits = number(0x0028, 0x0100, false);
    const uint64_t frames = std::max<uint64_t>(1, number(0x0028, 0x0008, true));
    if (rows == 0 || columns == 0 || bits == 0 || frames > (1u << 24)) return true;   // GDCM's own checks decide
    // The stream stands where the element's value starts, after its tag, VR and length (8 bytes implicit VR, 12
    // explicit with OB/OW).
    const bool implicitVR = ts.GetNegociatedType() == gdcm::TransferSyntax::Implicit;
    const size_t headerBytes = implicitVR ? 8 : 12;
    if (position < headerBytes) return true;
    FILE *f = std::fopen(path, "rb");
    if (!f) return true;
    unsigned char h[12] = {0};
    const bool got = std::fseek(f, long(position - headerBytes), SEEK_SET) == 0 && std::fread(h, 1, headerBytes, f) == headerBytes;
    std::fseek(f, 0, SEEK_END);
    const long end = std::ftell(f);
    std::fclose(f);
    if (!got) return true;
    const bool big = ts == gdcm::TransferSyntax::ExplicitVRBigEndian;
    auto u16 = [&](const unsigned char *b) { return big ? uint32_t(b[0] << 8 | b[1]) : uint32_t(b[0] | b[1] << 8); };
    auto u32 = [&](const unsigned char *b) { return big ? (uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3])
                                                        : (uint32_t(b[3]) << 24 | uint32_t(b[2]) << 16 | uint32_t(b[1]) << 8 | b[0]); };
    if (u16(h) != 0x7fe0 || u16(h + 2) != 0x0010) return true;
    const uint32_t declared = implicitVR ? u32(h + 4) : u32(h + 8);
    if (declared == 0xffffffffu) return true;
    const uint64_t available = end > 0 && uint64_t(end) > position ? std::min<uint64_t>(declared, uint64_t(end) - position) : 0;
    uint64_t needed = (rows * columns * frames * samples * bits + 7) / 8;
    const gdcm::Tag photometric(0x0028, 0x0004);
    if (ds.FindDataElement(photometric) && ds.GetDataElement(photometric).GetByteValue()) {
        const gdcm::ByteValue *v = ds.GetDataElement(photometric).GetByteValue();
        if (std::string(v->GetPointer(), v->GetLength()).rfind("YBR_FULL_422", 0) == 0) needed = needed * 2 / 3;   // 4:2:2
    }
    if (available < needed) {
        char text[200];
        std::snprintf(text, sizeof(text), "the pixel data holds %llu bytes, fewer than rows x columns x frames x samples need (%llu)",
                      (unsigned long long)available, (unsigned long long)needed);
        fail(message, size, text);
        return false;
    }
    return true;
}

/* Debian's GDCM is built with assertions, and its image reader asserts (aborting the process) on some inconsistent
   multi-frame headers instead of failing: a Frame Increment Pointer (0028,0009) naming an element the file lacks, or
   naming Grid Frame Offset Vector (3004,000C) without Number of Frames (0028,0008) (gdcm::ImageHelper reads both;
   pydicom's rtdose_1frame.dcm). A plain header read first refuses those with a reason. */
static bool consistentFrames(const char *path, char *message, size_t size) {
    if (!fileMetaSane(path, message, size)) return false;
    // GDCM's own warnings and errors go to stderr; the caller reports one line with the reason instead.
    gdcm::Trace::SetWarning(false); gdcm::Trace::SetError(false); gdcm::Trace::SetDebug(false);
    // As ITK's GDCMImageIO (what SimpleITK reads with) sets them: pixel spacing and rescale taken from the attributes
    // whatever the SOP class (secondary captures included).
    gdcm::ImageHelper::SetForcePixelSpacing(true);
    gdcm::ImageHelper::SetForceRescaleInterceptSlope(true);
    gdcm::Reader header;
    header.SetFileName(path);
    // Everything before the pixel data (whose value is not read: the image reader decodes it next); the stream then
    // stands at the Pixel Data element.
    const std::set<gdcm::Tag> skip = {gdcm::Tag(0x7fe0, 0x0010)};
    if (!header.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010), skip)) { fail(message, size, "not a DICOM file GDCM can read (a damaged or truncated header)"); return false; }
    const gdcm::DataSet &ds = header.GetFile().GetDataSet();
    if (!nativePixelDataComplete(path, header.GetFile(), header.GetStreamCurrentPosition(), message, size)) return false;
    const gdcm::Tag pointer(0x0028, 0x0009);
    if (!ds.FindDataElement(pointer)) return true;
    const gdcm::ByteValue *bv = ds.GetDataElement(pointer).GetByteValue();
    if (!bv || bv->GetLength() % 4 != 0) { fail(message, size, "its Frame Increment Pointer (0028,0009) is not a list of tags"); return false; }
    for (uint32_t k = 0; k < bv->GetLength() / 4; k++) {
        const unsigned char *b = reinterpret_cast<const unsigned char *>(bv->GetPointer()) + 4 * k;
        // GDCM holds the value in little-endian order whatever the file's (it swaps big-endian data sets on reading).
        uint16_t group = uint16_t(b[0] | b[1] << 8);
        uint16_t element = uint16_t(b[2] | b[3] << 8);
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

/* The image as the project wants it: palette colour through its table, colour interleaved. YBR colour stays YBR here
   (GDCM's decoders hand it over as stored) and becomes RGB after decoding (ybrToRGB), as ITK's GDCMImageIO does it. */
static bool prepared(const char *path, gdcm::ImageReader &reader, gdcm::Image &out, char *message, size_t size) {
    if (!consistentFrames(path, message, size)) return false;
    reader.SetFileName(path);
    if (!reader.Read()) { fail(message, size, "not a DICOM image GDCM can read (no pixel data, or a damaged header)"); return false; }
    // GDCM's filters hold their input by a reference-counted pointer: their input must be an image GDCM owns (the
    // reader's, a filter's output), never a copy on our stack, or the filter frees it when it goes (a crash on
    // pydicom's ExplVR_BigEnd.dcm). Both filters live until the result is copied out.
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
    if (current->GetPixelFormat().GetSamplesPerPixel() == 3 && current->GetPlanarConfiguration() == 1) {
        planar.SetInput(*current);
        planar.SetPlanarConfiguration(0);
        if (!planar.Change()) { fail(message, size, "planar colour could not be interleaved"); return false; }
        current = &planar.GetOutput();
    }
    out = *current;
    return true;
}

/* Decodes the prepared image into `buffer` (`length` bytes), YBR as RGB, big-endian 32-bit words in order. */
static bool decode(const gdcm::Image &image, void *buffer, size_t length, QuietStderr &quiet, char *message, size_t size) {
    if (!image.GetBuffer(static_cast<char *>(buffer))) {
        const std::string codec = quiet.firstLine();
        fail(message, size, "the pixel data could not be decoded (damaged, or shorter than rows x columns x frames)" + (codec.empty() ? std::string() : ": " + codec));
        return false;
    }
    if (isYBR(image)) ybrToRGB(static_cast<unsigned char *>(buffer), length);
    // GDCM 3.0.21 byte-swaps 32-bit samples of explicit VR big endian files as 16-bit words, leaving the two halves of
    // each value exchanged (pydicom's rtdose_expb.dcm: 0x0EE80013 for 1,249,000 = 0x00130EE8; SimpleITK shows the
    // same wrong values). The halves are put back, so the values are pydicom's.
    if (image.GetTransferSyntax() == gdcm::TransferSyntax::ExplicitVRBigEndian && image.GetPixelFormat().GetBitsAllocated() == 32) {
        uint32_t *w = static_cast<uint32_t *>(buffer);
        for (size_t i = 0; i < length / 4; i++) w[i] = (w[i] << 16) | (w[i] >> 16);
    }
    return true;
}

/* ImagePositionPatient of item `index` of an enhanced object's Per-frame Functional Groups (5200,9230), through its
   Plane Position Sequence (0020,9113). */
static bool framePosition(const gdcm::DataSet &ds, size_t index, double out[3]) {
    const gdcm::Tag perFrame(0x5200, 0x9230), plane(0x0020, 0x9113), ipp(0x0020, 0x0032);
    if (!ds.FindDataElement(perFrame)) return false;
    gdcm::SmartPointer<gdcm::SequenceOfItems> frames = ds.GetDataElement(perFrame).GetValueAsSQ();
    if (!frames || index >= frames->GetNumberOfItems()) return false;
    const gdcm::DataSet &item = frames->GetItem(index + 1).GetNestedDataSet();
    if (!item.FindDataElement(plane)) return false;
    gdcm::SmartPointer<gdcm::SequenceOfItems> planes = item.GetDataElement(plane).GetValueAsSQ();
    if (!planes || planes->GetNumberOfItems() < 1) return false;
    const gdcm::DataSet &p = planes->GetItem(1).GetNestedDataSet();
    if (!p.FindDataElement(ipp) || !p.GetDataElement(ipp).GetByteValue()) return false;
    const gdcm::ByteValue *bv = p.GetDataElement(ipp).GetByteValue();
    std::string text(bv->GetPointer(), bv->GetLength());
    return std::sscanf(text.c_str(), "%lf\\%lf\\%lf", &out[0], &out[1], &out[2]) == 3;
}

/* The facts of a prepared image (and its reader's data set) that MedFormats needs. */
static void describe(const gdcm::ImageReader &reader, const gdcm::Image &image, cgdcm_info *info) {
    const size_t limit = info->max_bytes;
    std::memset(info, 0, sizeof(*info));
    info->max_bytes = limit;
    const unsigned int *dims = image.GetDimensions();
    info->columns = dims[0];
    info->rows = dims[1];
    info->frames = image.GetNumberOfDimensions() > 2 ? dims[2] : 1;
    gdcm::PixelFormat pf = image.GetPixelFormat();
    info->samples_per_pixel = pf.GetSamplesPerPixel();
    info->bits_allocated = pf.GetBitsAllocated();
    info->bits_stored = pf.GetBitsStored();
    info->pixel_representation = pf.GetPixelRepresentation();
    // YBR is delivered as RGB (cgdcm_read_pixels converts it).
    std::strncpy(info->photometric, isYBR(image) ? "RGB" : gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation()), sizeof(info->photometric) - 1);
    info->planar_configuration = image.GetPlanarConfiguration();
    info->slope = image.GetSlope();
    info->intercept = image.GetIntercept();
    const gdcm::DataSet &ds = reader.GetFile().GetDataSet();
    // At the top level, or (enhanced objects) in the functional groups' Pixel Value Transformation, which GDCM reads.
    info->has_rescale = ds.FindDataElement(gdcm::Tag(0x0028, 0x1053)) || ds.FindDataElement(gdcm::Tag(0x0028, 0x1052))
        || info->slope != 1 || info->intercept != 0;
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
    if (info->frames > 1 && framePosition(ds, 0, info->first_frame) && framePosition(ds, info->frames - 1, info->last_frame))
        info->has_frame_positions = 1;
}

/* The file a thread is reading through GDCM, for the abort handler below. */
static thread_local const char *readingPath = nullptr;
static struct sigaction previousAbort;

/* Debian's GDCM is built with assertions, and a malformed file that passes the checks above can still trip one (or
   make a codec corrupt the heap, which glibc then aborts on: Debian's OpenJPEG 2.5.0 on a damaged JPEG 2000 stream). An
   abort while a thread reads a file becomes one line on the real stderr and exit status 1 (what every other bad
   file gives), not a crash with no message (the codecs' stderr is redirected then); any other abort goes on to the
   handler that was there before. Only async-signal-safe calls here. */
static void abortedInGDCM(int signal) {
    const char *path = readingPath;
    if (!path) {
        sigaction(SIGABRT, &previousAbort, nullptr);
        raise(signal);
        return;
    }
    const int saved = QuietStderr::savedDescriptor();
    const int fd = saved >= 0 ? saved : 2;
    const char *parts[] = {"error: ", path, ": reading stopped inside GDCM or a codec it calls (a damaged file they abort on; Docs/formats.md#dicom, known limits)\n"};
    for (const char *p : parts) { ssize_t ignored = write(fd, p, std::strlen(p)); (void)ignored; }
    _exit(1);
}

/* Runs one entry point's body so that no C++ exception crosses into Swift (an exception becomes status 1 and a
   message) and an assertion inside GDCM ends the process with one line (above). */
template <typename Body>
static int guarded(const char *path, char *message, size_t size, Body body) {
    static std::once_flag installed;
    std::call_once(installed, [] {
        // Under the fuzzer (Scripts/fuzz sets MEDSELECT_FUZZ_TARGET) an abort must stay an abort, for libFuzzer to
        // report it and keep the input.
        if (std::getenv("MEDSELECT_FUZZ_TARGET")) return;
        struct sigaction a;
        std::memset(&a, 0, sizeof(a));
        a.sa_handler = abortedInGDCM;
        sigemptyset(&a.sa_mask);
        sigaction(SIGABRT, &a, &previousAbort);
    });
    struct Reading {
        explicit Reading(const char *p) { readingPath = p; }
        ~Reading() { readingPath = nullptr; }
    } reading(path);
    try {
        return body();
    } catch (const std::exception &e) {
        fail(message, size, std::string("GDCM: ") + e.what());
        return 1;
    } catch (...) {
        fail(message, size, "GDCM failed on this file");
        return 1;
    }
}

extern "C" int cgdcm_read_info(const char *path, cgdcm_info *info, char *message, size_t size) {
    QuietStderr quiet;
    return guarded(path, message, size, [&]() -> int {
        gdcm::ImageReader reader;
        gdcm::Image image;
        if (!prepared(path, reader, image, message, size)) return 1;
        describe(reader, image, info);
        return 0;
    });
}

extern "C" int cgdcm_read_image(const char *path, cgdcm_info *info, void **pixels, char *message, size_t size) {
    QuietStderr quiet;
    *pixels = nullptr;
    return guarded(path, message, size, [&]() -> int {
        gdcm::ImageReader reader;
        gdcm::Image image;
        if (!prepared(path, reader, image, message, size)) return 1;
        describe(reader, image, info);
        const size_t length = image.GetBufferLength();
        // Refused before allocating when the header promises more than the caller's limit allows.
        if (info->max_bytes > 0 && length > info->max_bytes) {
            fail(message, size, "the decoded pixel data would take " + std::to_string(length) + " bytes, over the limit of " + std::to_string(info->max_bytes));
            return 1;
        }
        void *buffer = std::malloc(length > 0 ? length : 1);
        if (!buffer) { fail(message, size, "out of memory for the pixel data"); return 1; }
        if (!decode(image, buffer, length, quiet, message, size)) { std::free(buffer); return 1; }
        *pixels = buffer;
        return 0;
    });
}

extern "C" void cgdcm_free(void *pixels) { std::free(pixels); }

template <typename T>
static void convertSamples(const T *raw, size_t count, int samples, int bitsStored, bool isSigned, bool invert,
                           double slope, double intercept, float *out) {
    const int bits = int(sizeof(T) * 8);
    const bool partial = bitsStored > 0 && bitsStored < bits;
    const uint64_t mask = bitsStored >= 64 ? ~uint64_t(0) : (uint64_t(1) << bitsStored) - 1;
    const int64_t top = bitsStored > 0 && bitsStored < 63 ? (int64_t(1) << bitsStored) - 1 : int64_t(0xffffffff);
    const bool identity = slope == 1 && intercept == 0;
    for (size_t i = 0; i < count; i++) {
        for (int c = 0; c < samples; c++) {
            int64_t v;
            if (partial) {
                uint64_t u = uint64_t(std::make_unsigned_t<T>(raw[i * samples + c])) & mask;
                v = isSigned && (u >> (bitsStored - 1)) & 1 ? int64_t(u) - int64_t(mask) - 1 : int64_t(u);
            } else {
                v = int64_t(raw[i * samples + c]);
            }
            if (invert) v = top - v;
            out[size_t(c) * count + i] = identity ? float(v) : float(double(v) * slope + intercept);
        }
    }
}

extern "C" void cgdcm_to_float(const void *raw, size_t count, int samples, int bitsAllocated, int bitsStored, int isSigned,
                               int invert, double slope, double intercept, float *out) {
    if (bitsAllocated == 1) {
        const unsigned char *b = static_cast<const unsigned char *>(raw);
        for (size_t i = 0; i < count; i++) {
            int64_t v = (b[i >> 3] >> (i & 7)) & 1;
            if (invert) v = 1 - v;
            out[i] = float(double(v) * slope + intercept);
        }
        return;
    }
    const bool s = isSigned != 0, inv = invert != 0;
    switch (bitsAllocated) {
    case 8: s ? convertSamples(static_cast<const int8_t *>(raw), count, samples, bitsStored, s, inv, slope, intercept, out)
              : convertSamples(static_cast<const uint8_t *>(raw), count, samples, bitsStored, s, inv, slope, intercept, out); break;
    case 16: s ? convertSamples(static_cast<const int16_t *>(raw), count, samples, bitsStored, s, inv, slope, intercept, out)
               : convertSamples(static_cast<const uint16_t *>(raw), count, samples, bitsStored, s, inv, slope, intercept, out); break;
    default: s ? convertSamples(static_cast<const int32_t *>(raw), count, samples, bitsStored, s, inv, slope, intercept, out)
               : convertSamples(static_cast<const uint32_t *>(raw), count, samples, bitsStored, s, inv, slope, intercept, out); break;
    }
}

extern "C" int cgdcm_read_tags(const char *path, const uint32_t *tags, int count, char *out, size_t outSize, size_t *offsets,
                               char *message, size_t size) {
    QuietStderr quiet;
    return guarded(path, message, size, [&]() -> int {
        gdcm::Trace::SetWarning(false); gdcm::Trace::SetError(false); gdcm::Trace::SetDebug(false);
        if (!fileMetaSane(path, message, size)) return 1;
        gdcm::Reader reader;
        reader.SetFileName(path);
        const std::set<gdcm::Tag> skip = {gdcm::Tag(0x7fe0, 0x0010)};
        if (!reader.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010), skip)) { fail(message, size, "not a DICOM file GDCM can read (a damaged or truncated header)"); return 1; }
        gdcm::StringFilter strings;
        strings.SetFile(reader.GetFile());
        const gdcm::DataSet &ds = reader.GetFile().GetDataSet();
        size_t at = 0;
        for (int i = 0; i < count; i++) {
            const gdcm::Tag tag(uint16_t(tags[i] >> 16), uint16_t(tags[i] & 0xffff));
            std::string value;
            if (tag.GetGroup() == 0x0002) {
                const gdcm::DataSet &meta = reader.GetFile().GetHeader();
                if (meta.FindDataElement(tag)) value = strings.ToString(meta.GetDataElement(tag));
            } else if (ds.FindDataElement(tag)) {
                value = strings.ToString(tag);
            }
            while (!value.empty() && (value.back() == ' ' || value.back() == 0)) value.pop_back();
            offsets[i] = at;
            if (at >= outSize) { offsets[i] = outSize - 1; continue; }
            const size_t room = outSize - at - 1;
            const size_t n = std::min(room, value.size());
            std::memcpy(out + at, value.data(), n);
            out[at + n] = 0;
            at += n + 1;
        }
        return 0;
    });
}
