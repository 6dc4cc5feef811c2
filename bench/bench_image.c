/* Benchmark of the image module:
 *  1. chunked image encryption and decryption of a 32 MiB archive, against
 *     one single-shot XChaCha20-Poly1305 call over the same bytes into a
 *     freshly allocated buffer, as the image API returns one (so the ratio
 *     is the cost of chunking, the KDF and the per-chunk AD);
 *  2. packing an example service (walk, syntax check in a forked embedded
 *     CPython, encode, hash), against spawning `python3.11 -I -S -c pass`
 *     (what a checker run as a subprocess would pay before compiling).
 * Usage: bench_image [ROUNDS] [EXAMPLE_SERVICE_DIR] */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/image.h"

extern char **environ;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_d);
  return v[n / 2];
}

int main(int argc, char **argv) {
  uint64_t rounds = 5;
  if (argc > 1 &&
      (teex_parse_u64(argv[1], &rounds) != 0 || rounds == 0 || rounds > 100)) {
    fprintf(stderr, "usage: bench_image [ROUNDS 1..100] [SERVICE_DIR]\n");
    return 2;
  }
  const char *svc =
      argc > 2 ? argv[2] : "examples/services/logistic-regression/service";
  teex_crypto_init();
  size_t n = 32u << 20;
  uint8_t *pt = malloc(n), key[32], nonce[24] = {0};
  teex_random(pt, n);
  teex_random(key, sizeof key);
  double t_raw[100], t_enc[100], t_dec[100];
  for (uint64_t r = 0; r < rounds; r++) {
    double t0 = now();
    uint8_t *raw = malloc(n + 16);
    teex_xaead_encrypt(key, nonce, NULL, 0, pt, n, raw);
    free(raw);
    double t1 = now();
    uint8_t *ct, *back;
    size_t ctlen, blen;
    struct teex_err err;
    if (teex_image_encrypt(key, pt, n, &ct, &ctlen, &err) != 0)
      return 1;
    double t2 = now();
    if (teex_image_decrypt(key, ct, ctlen, &back, &blen, &err) != 0)
      return 1;
    double t3 = now();
    teex_image_bytes_free(ct, ctlen);
    teex_image_bytes_free(back, blen);
    t_raw[r] = t1 - t0;
    t_enc[r] = t2 - t1;
    t_dec[r] = t3 - t2;
  }
  double mb = (double)n / 1e6;
  double raw_s = median(t_raw, rounds), enc_s = median(t_enc, rounds),
         dec_s = median(t_dec, rounds);
  printf("encrypt 32 MiB: bare xaead %.0f MB/s | image encrypt %.0f MB/s "
         "(%.2fx) | image decrypt %.0f MB/s (%.2fx)\n",
         mb / raw_s, mb / enc_s, raw_s / enc_s, mb / dec_s, raw_s / dec_s);

  double t_pack[100], t_spawn[100];
  for (uint64_t r = 0; r < rounds; r++) {
    double t0 = now();
    struct teex_image *img;
    uint8_t *a;
    size_t alen;
    struct teex_err err;
    if (teex_image_pack(svc, &img, &a, &alen, &err) != 0) {
      fprintf(stderr, "pack %s: %s\n", svc, err.msg);
      return 1;
    }
    double t1 = now();
    teex_image_free(img);
    teex_image_bytes_free(a, alen);
    char *args[] = {"/usr/bin/python3.11", "-I", "-S", "-c", "pass", NULL};
    double t2 = now();
    pid_t pid;
    if (posix_spawn(&pid, args[0], NULL, NULL, args, environ) != 0)
      return 1;
    int st;
    waitpid(pid, &st, 0);
    double t3 = now();
    t_pack[r] = t1 - t0;
    t_spawn[r] = t3 - t2;
  }
  double pk = median(t_pack, rounds), sp = median(t_spawn, rounds);
  printf("pack %s: %.1f ms | spawn python3.11 -I -S -c pass: %.1f ms "
         "(pack/spawn %.2f)\n",
         svc, pk * 1e3, sp * 1e3, pk / sp);
  free(pt);
  return 0;
}
