/* Benchmark: CIDv1 computation (chunking, leaf hashes, dag-pb nodes) against
 * plain SHA-256 over the same bytes, in the same run; prints MB/s and the
 * ratio. Also times crypto.h's teex_sha256, for reference: the ipfs module
 * hashes with OpenSSL's EVP because that is the faster of the two here.
 * Usage: bench_ipfs_cid [MiB] (default 256). */
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ipfs.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  size_t n = (size_t)mib << 20;
  uint8_t *data = malloc(n);
  if (data == NULL)
    return 1;
  for (size_t i = 0; i < n; i++) /* cheap, not constant, not compressible */
    data[i] = (uint8_t)((i * 2654435761u) >> 13);

  /* Best of 3 for each, interleaved, so both see the same machine state. */
  double best_sha = 1e9, best_cid = 1e9, best_th = 1e9;
  if (teex_crypto_init() != 0)
    return 1;
  uint8_t digest[32];
  struct teex_cid cid;
  for (int round = 0; round < 3; round++) {
    double t0 = now();
    unsigned int len = 32;
    EVP_Digest(data, n, digest, &len, EVP_sha256(), NULL);
    double t1 = now();
    if (teex_ipfs_cid_of_buffer(data, n, &cid, NULL) != 0)
      return 1;
    double t2 = now();
    teex_sha256(data, n, digest);
    double t3 = now();
    if (t3 - t2 < best_th)
      best_th = t3 - t2;
    if (t1 - t0 < best_sha)
      best_sha = t1 - t0;
    if (t2 - t1 < best_cid)
      best_cid = t2 - t1;
  }
  char s[TEEX_CID_STR_SIZE];
  teex_cid_to_string(&cid, s);
  double mb = (double)n / 1e6;
  printf("input            %llu MiB (%s)\n", (unsigned long long)mib, s);
  printf("sha256 (OpenSSL) %8.1f MB/s\n", mb / best_sha);
  printf("teex CIDv1       %8.1f MB/s\n", mb / best_cid);
  printf("ratio CID/sha256 %8.3f (1.0 = no overhead over hashing)\n",
         best_sha / best_cid);
  printf("teex_sha256      %8.1f MB/s (crypto.h; for reference)\n",
         mb / best_th);
  free(data);
  return 0;
}
