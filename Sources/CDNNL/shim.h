/* CDNNL: oneDNN from Debian's libdnnl-dev (2.6, OpenMP runtime). Row-major dnnl_sgemm is used for large products. */
#include <oneapi/dnnl/dnnl.h>
