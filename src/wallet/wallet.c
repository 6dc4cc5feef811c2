/* Keystore-file accounts (see include/teex/wallet.h). */
#include "teex/wallet.h"

#include "teex/crypto.h"
#include "teex/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_SUFFIX_LEN 40 /* lower-case hex address at the end of the name */

/* mkdir -p with mode 0700 for what it creates. */
static int ensure_dir(const char *dir, struct teex_err *err) {
  char path[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof path)
    return teex_err_set(err, TEEX_EINVAL, "bad directory");
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    char saved = path[i];
    path[i] = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
      return teex_err_set(err, TEEX_EIO, "create %s: %s", path,
                          strerror(errno));
    path[i] = saved;
  }
  return 0;
}

/* Finds the file of addr: names end in "--<40 hex>" (geth's UTC--...--addr)
 * or are "<40 hex>.json". path gets the full path. */
static int find_file(const char *dir, const uint8_t addr[20], char *path,
                     size_t size) {
  char hex[41];
  teex_hex_encode(addr, 20, hex);
  DIR *d = opendir(dir);
  if (d == NULL)
    return TEEX_ENOTFOUND;
  struct dirent *e;
  int rc = TEEX_ENOTFOUND;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n >= NAME_SUFFIX_LEN &&
        strcasecmp(e->d_name + n - NAME_SUFFIX_LEN, hex) == 0) {
      snprintf(path, size, "%s/%s", dir, e->d_name);
      rc = 0;
      break;
    }
  }
  closedir(d);
  return rc;
}

static int write_keystore(const char *dir, const uint8_t addr[20],
                          const char *json, struct teex_err *err) {
  int rc = ensure_dir(dir, err);
  if (rc != 0)
    return rc;
  char existing[4096];
  if (find_file(dir, addr, existing, sizeof existing) == 0)
    return teex_err_set(err, TEEX_EEXIST, "account already in %s", existing);
  char hex[41], path[4096], tmp[4096];
  teex_hex_encode(addr, 20, hex);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  snprintf(path, sizeof path,
           "%s/UTC--%04d-%02d-%02dT%02d-%02d-%02d.000000000Z--%s", dir,
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, hex);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "create %s: %s", tmp, strerror(errno));
  size_t len = strlen(json), off = 0;
  while (off < len) {
    ssize_t w = write(fd, json + off, len - off);
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return teex_err_set(err, e == ENOSPC ? TEEX_ENOSPC : TEEX_EIO,
                          "write %s: %s", tmp, strerror(e));
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  }
  return 0;
}

int teex_wallet_import_key(const char *dir, const uint8_t sk[32],
                           const char *password,
                           const struct teex_keystore_params *params,
                           uint8_t addr[20], struct teex_err *err) {
  uint8_t pub[64];
  int rc = teex_secp256k1_public(sk, pub);
  if (rc != 0)
    return teex_err_set(err, rc, "not a valid secp256k1 private key");
  teex_eth_address(pub, addr);
  char *json = NULL;
  rc = teex_keystore_encrypt(sk, password, params, &json, err);
  if (rc != 0)
    return rc;
  rc = write_keystore(dir, addr, json, err);
  free(json);
  return rc;
}

int teex_wallet_create(const char *dir, const char *password,
                       const struct teex_keystore_params *params,
                       uint8_t addr[20], struct teex_err *err) {
  uint8_t *sk = teex_secret_alloc(32);
  uint8_t pub[64];
  if (sk == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  int rc = teex_secp256k1_keypair(sk, pub);
  if (rc == 0)
    rc = teex_wallet_import_key(dir, sk, password, params, addr, err);
  teex_secret_free(sk);
  return rc;
}

int teex_wallet_import_json(const char *dir, const char *json,
                            const char *password, uint8_t addr[20],
                            struct teex_err *err) {
  uint8_t *sk = teex_secret_alloc(32);
  if (sk == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  int rc = teex_keystore_decrypt(json, password, sk, addr, err);
  teex_secret_free(sk);
  if (rc != 0)
    return rc;
  return write_keystore(dir, addr, json, err);
}

static int cmp_addr(const void *a, const void *b) {
  return memcmp(a, b, 20);
}

int teex_wallet_list(const char *dir, uint8_t (*addrs)[20], size_t max,
                     struct teex_err *err) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    if (errno == ENOENT)
      return 0;
    return teex_err_set(err, TEEX_EIO, "open %s: %s", dir, strerror(errno));
  }
  size_t count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && count < max) {
    size_t n = strlen(e->d_name);
    if (n < NAME_SUFFIX_LEN || strstr(e->d_name, ".tmp") != NULL)
      continue;
    size_t got;
    if (teex_hex_decode(e->d_name + n - NAME_SUFFIX_LEN, addrs[count], 20,
                        &got) == 0 &&
        got == 20)
      count++;
  }
  closedir(d);
  qsort(addrs, count, 20, cmp_addr);
  return (int)count;
}

int teex_wallet_read(const char *dir, const uint8_t addr[20], char **json,
                     struct teex_err *err) {
  char path[4096];
  if (find_file(dir, addr, path, sizeof path) != 0)
    return teex_err_set(err, TEEX_ENOTFOUND, "no such account in %s", dir);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "open %s: %s", path, strerror(errno));
  char *buf = malloc(TEEX_KEYSTORE_MAX_JSON + 1);
  size_t n = buf ? fread(buf, 1, TEEX_KEYSTORE_MAX_JSON + 1, f) : 0;
  fclose(f);
  if (buf == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  if (n > TEEX_KEYSTORE_MAX_JSON) {
    free(buf);
    return teex_err_set(err, TEEX_ETOOBIG, "%s: keystore too large", path);
  }
  buf[n] = '\0';
  *json = buf;
  return 0;
}

int teex_wallet_unlock(const char *dir, const uint8_t addr[20],
                       const char *password, uint8_t sk[32],
                       struct teex_err *err) {
  char *json = NULL;
  int rc = teex_wallet_read(dir, addr, &json, err);
  if (rc != 0)
    return rc;
  uint8_t got[20];
  rc = teex_keystore_decrypt(json, password, sk, got, err);
  free(json);
  if (rc == 0 && memcmp(got, addr, 20) != 0) {
    teex_wipe(sk, 32);
    rc = teex_err_set(err, TEEX_EAUTH, "keystore holds another address");
  }
  return rc;
}

int teex_wallet_password(const char *file, char *out, size_t out_size,
                         struct teex_err *err) {
  if (file != NULL) {
    FILE *f = fopen(file, "r");
    if (f == NULL)
      return teex_err_set(err, TEEX_EIO, "password file %s: %s", file,
                          strerror(errno));
    if (fgets(out, (int)out_size, f) == NULL)
      out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
  }
  const char *env = getenv("TEEX_PASSWORD");
  if (env == NULL)
    return teex_err_set(err, TEEX_EINVAL,
                        "no password: give --password-file FILE or set "
                        "TEEX_PASSWORD");
  if (strlen(env) >= out_size)
    return teex_err_set(err, TEEX_ETOOBIG, "password too long");
  memcpy(out, env, strlen(env) + 1);
  return 0;
}
