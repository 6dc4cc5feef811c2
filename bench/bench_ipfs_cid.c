/* Benchmark: CIDv1 computation (chunking, leaf hashes, dag-pb nodes) against
 * one plain SHA-256 (crypto.h's teex_sha256, the hash the CIDs use) over the
 * same bytes, in the same run; prints MB/s and the ratio. Best of 5
 * interleaved rounds, so both see the same machine state.
 * Usage: bench_ipfs_cid [MiB] (default 256). */
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ipfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  uint64_t mib = 256;
  if (argc > 1 &&
      (teex_parse_u64(argv[1], &mib) != 0 || mib == 0 || mib > 4096)) {
    fprintf(stderr, "usage: bench_ipfs_cid [MiB 1..4096]\n");
    return 2;
  }
  if (teex_crypto_init() != 0)
    return 1;
  size_t n = (size_t)mib << 20;
  uint8_t *data = malloc(n);
  if (data == NULL)
    return 1;
  for (size_t i = 0; i < n; i++) /* cheap, not constant, not compressible */
    data[i] = (uint8_t)((i * 2654435761u) >> 13);

  double best_sha = 1e9, best_cid = 1e9;
  uint8_t digest[32];
  struct teex_cid cid;
  for (int round = 0; round < 5; round++) {
    double t0 = now();
    teex_sha256(data, n, digest);
    double t1 = now();
    if (teex_ipfs_cid_of_buffer(data, n, &cid, NULL) != 0)
      return 1;
    double t2 = now();
    if (t1 - t0 < best_sha)
      best_sha = t1 - t0;
    if (t2 - t1 < best_cid)
      best_cid = t2 - t1;
  }
  char s[TEEX_CID_STR_SIZE];
  teex_cid_to_string(&cid, s);
  double mb = (double)n / 1e6;
  printf("input            %llu MiB (%s)\n", (unsigned long long)mib, s);
  printf("sha256           %8.1f MB/s (teex_sha256)\n", mb / best_sha);
  printf("teex CIDv1       %8.1f MB/s\n", mb / best_cid);
  printf("ratio CID/sha256 %8.3f (1.0 = no overhead over hashing)\n",
         best_sha / best_cid);
  free(data);
  return 0;
}
