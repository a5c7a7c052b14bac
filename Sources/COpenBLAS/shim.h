/* COpenBLAS: CBLAS from Debian's libopenblas-dev (blasint is 32-bit). */
#include <cblas.h>
