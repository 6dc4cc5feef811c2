/* AEAD throughput on 16 KiB messages, against `openssl speed` for the same
 * cipher (ChaCha20-Poly1305) in the same run. Prints MB/s for teex's
 * ChaCha20-Poly1305 and XChaCha20-Poly1305 (the sealing cipher) and their
 * ratio to OpenSSL's EVP implementation.
 * Usage: bench_aead [seconds]   (default 2) */
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

int main(int argc, char **argv) {
  int seconds = 2;
  if (argc > 1) {
    seconds = (int)strtol(argv[1], NULL, 10);
    if (seconds < 1 || seconds > 60)
      seconds = 2;
  }
  if (teex_crypto_init() != 0)
    return 1;
  double ossl1 = openssl_speed(seconds);
  double ours = run(0, seconds);
  double xours = run(1, seconds);
  double ossl2 = openssl_speed(seconds);
  if (ossl1 <= 0 || ossl2 <= 0) {
    fprintf(stderr, "bench_aead: openssl speed failed\n");
    return 1;
  }
  double ossl = (ossl1 + ossl2) / 2;
  printf("aead 16KiB: openssl chacha20-poly1305 %.0f MB/s (runs %.0f, %.0f)\n",
         ossl, ossl1, ossl2);
  printf("aead 16KiB: teex chacha20-poly1305    %.0f MB/s  ratio %.2f\n", ours,
         ours / ossl);
  printf("aead 16KiB: teex xchacha20-poly1305   %.0f MB/s  ratio %.2f\n", xours,
         xours / ossl);
  return 0;
}
