/* CZlib: zlib for MetaImage .zraw / CompressedData and for gzip detection. */
#include <zlib.h>
