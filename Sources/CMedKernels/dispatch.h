/* Runtime dispatch shared by the kernel files: the instruction-set level and the KERNELS macro that compiles a
 * parallel-loop worker for AVX-512, AVX2 and the baseline. Internal to CMedKernels (not in include/). */
#pragma once
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INLINE static inline __attribute__((always_inline))

/* The instruction-set level the kernels run at: 4 (x86-64-v4, AVX-512), 3 (x86-64-v3, AVX2 + FMA) or 1 (baseline),
 * from the processor's features, capped by ONEDNN_MAX_CPU_ISA. Decided once. */
static inline int isa_level(void) {
    static int level = 0;
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l) return l;
#if defined(__x86_64__)
    __builtin_cpu_init();
    l = 1;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) l = 3;
    if (l == 3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) l = 4;
    const char *cap = getenv("ONEDNN_MAX_CPU_ISA");
    if (cap && *cap) {
        if (!strncasecmp(cap, "AVX512", 6) || !strcasecmp(cap, "ALL") || !strncasecmp(cap, "AVX10", 5) || !strncasecmp(cap, "AMX", 3)) { }
        else if (!strncasecmp(cap, "AVX2", 4)) { if (l > 3) l = 3; }
        else l = 1;
    }
#else
    l = 1;
#endif
    __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    return l;
}


/* A parallel-loop worker `name` (void (void *, long, long)) compiled for each level from the always-inlined
 * name##_body, and the dispatcher that calls the processor's version. */
#if defined(__x86_64__)
#define KERNELS(name)                                                                                                     \
    __attribute__((target("arch=x86-64-v4"))) static void name##_v4(void *c, long b, long e) { name##_body(c, b, e); }    \
    __attribute__((target("arch=x86-64-v3"))) static void name##_v3(void *c, long b, long e) { name##_body(c, b, e); }    \
    static void name##_v1(void *c, long b, long e) { name##_body(c, b, e); }                                              \
    static void name(void *c, long b, long e) {                                                                           \
        switch (isa_level()) { case 4: name##_v4(c, b, e); break; case 3: name##_v3(c, b, e); break; default: name##_v1(c, b, e); } \
    }
#else
#define KERNELS(name) static void name(void *c, long b, long e) { name##_body(c, b, e); }
#endif
/* Vector arguments of the always-inlined helpers never cross a call boundary, whatever the clone's ISA. */
#pragma clang diagnostic ignored "-Wpsabi"

