/* AEAD throughput on 16 KiB messages, against `openssl speed` for the same
 * cipher (ChaCha20-Poly1305) in the same run. Prints MB/s for teex's
 * ChaCha20-Poly1305 and XChaCha20-Poly1305 (the sealing cipher) and their
 * ratio to OpenSSL's EVP implementation.
 * Usage: bench_aead [rounds]   (default 5) */
#include "teex/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_LEN 16384

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run(int x, double seconds) {
  static uint8_t msg[MSG_LEN], out[MSG_LEN + 16];
  uint8_t key[32], nonce[24] = {0};
  teex_random(key, sizeof key);
  teex_random(msg, sizeof msg);
  unsigned long iters = 0;
  double t0 = now(), t;
  do {
    for (int i = 0; i < 64; i++) {
      nonce[0] = (uint8_t)iters;
      if (x)
        teex_xaead_encrypt(key, nonce, NULL, 0, msg, MSG_LEN, out);
      else
        teex_aead_encrypt(key, nonce, NULL, 0, msg, MSG_LEN, out);
      iters++;
    }
    t = now() - t0;
  } while (t < seconds);
  return (double)iters * MSG_LEN / t / 1e6;
}

static double openssl_speed(int seconds) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "openssl speed -evp chacha20-poly1305 -bytes %d -seconds %d -mr "
           "2>/dev/null",
           MSG_LEN, seconds);
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return -1;
  char line[512];
  double bytes_per_s = -1;
  while (fgets(line, sizeof line, p)) {
    if (strncmp(line, "+F:", 3) == 0) {
      char *last = strrchr(line, ':');
      if (last)
        bytes_per_s = strtod(last + 1, NULL);
    }
  }
  pclose(p);
  return bytes_per_s / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define ROUNDS 5

/* Rounds alternate OpenSSL and teex, one second each, and the ratio is
 * taken within each round, so drift in machine speed cancels; the median
 * round is reported. */
int main(int argc, char **argv) {
  int rounds = ROUNDS;
  if (argc > 1) {
    rounds = (int)strtol(argv[1], NULL, 10);
    if (rounds < 1 || rounds > 50)
      rounds = ROUNDS;
  }
  if (teex_crypto_init() != 0)
    return 1;
  double r[50], rx[50], o[50], t[50], tx[50];
  for (int i = 0; i < rounds; i++) {
    o[i] = openssl_speed(1);
    if (o[i] <= 0) {
      fprintf(stderr, "bench_aead: openssl speed failed\n");
      return 1;
    }
    t[i] = run(0, 1.0);
    tx[i] = run(1, 1.0);
    r[i] = t[i] / o[i];
    rx[i] = tx[i] / o[i];
  }
  qsort(r, (size_t)rounds, sizeof *r, cmp_double);
  qsort(rx, (size_t)rounds, sizeof *rx, cmp_double);
  qsort(o, (size_t)rounds, sizeof *o, cmp_double);
  qsort(t, (size_t)rounds, sizeof *t, cmp_double);
  qsort(tx, (size_t)rounds, sizeof *tx, cmp_double);
  int m = rounds / 2;
  printf("aead 16KiB, %d rounds, medians:\n", rounds);
  printf("  openssl speed chacha20-poly1305  %6.0f MB/s\n", o[m]);
  printf("  teex chacha20-poly1305           %6.0f MB/s  ratio %.2f "
         "(min %.2f max %.2f)\n",
         t[m], r[m], r[0], r[rounds - 1]);
  printf("  teex xchacha20-poly1305          %6.0f MB/s  ratio %.2f "
         "(min %.2f max %.2f)\n",
         tx[m], rx[m], rx[0], rx[rounds - 1]);
  return 0;
}
