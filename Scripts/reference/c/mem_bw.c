// Memory bandwidth probe (STREAM-style triad a = b + s*c over 3 x 128 MB, OpenMP threads), GB/s counted as 3 arrays
// moved per pass. Run it beside fma_peak before and after a comparison: a shared host's other tenants can take memory
// bandwidth and L3 without touching the FMA units, which slows the memory-bound parts of a training step.
// Build: gcc -O2 -march=native -fopenmp mem_bw.c -o mem_bw     Run: ./mem_bw [threads]
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  omp_set_num_threads(threads);
  long n = 32L << 20;  // 32 Mi floats = 128 MB per array
  float *a = aligned_alloc(64, n * 4), *b = aligned_alloc(64, n * 4), *c = aligned_alloc(64, n * 4);
#pragma omp parallel for
  for (long i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
  double best = 1e30;
  for (int r = 0; r < 10; r++) {
    double t0 = now();
#pragma omp parallel for
    for (long i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
    double t = now() - t0;
    if (t < best) best = t;
  }
  printf("{\"bench\":\"mem_bw_triad\",\"threads\":%d,\"gb_per_s\":%.1f,\"check\":%.1f}\n", threads, 3.0 * n * 4 / best / 1e9, a[n / 2]);
  return 0;
}
