/* Forwarding header: libnifti's nifti2_io.h includes <znzlib.h>, which Debian installs under nifti/. */
#ifndef HAVE_ZLIB
#define HAVE_ZLIB 1
#endif
#include <nifti/znzlib.h>
