/* The sim backend's key files (see src/tee/simkeys.h). */
#include "tee/simkeys.h"

#include "tee/tee_internal.h"
#include "teex/crypto.h"
#include "teex/mem.h"
#include "teex/tee.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOT_MAGIC "TXRK"
#define PLATFORM_MAGIC "TXPK"

static int check_header(const uint8_t *p, size_t len, size_t want,
                        const char *magic, const char *what,
                        struct teex_err *err) {
  if (len != want)
    return teex_err_set(err, TEEX_EFORMAT, "%s is %zu bytes, expected %zu",
                        what, len, want);
  if (memcmp(p, magic, 4) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "%s has a bad magic", what);
  if (tee_get16(p + 4) != 1)
    return teex_err_set(err, TEEX_EVERSION, "%s version %u not supported", what,
                        tee_get16(p + 4));
  if (tee_get16(p + 6) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "%s reserved bytes not zero", what);
  return 0;
}

/* libsodium's secret key carries its public key: check they agree. */
static int check_keypair(const uint8_t sk[64], const char *what,
                         struct teex_err *err) {
  uint8_t pk[32], sk2[64];
  int rc = teex_ed25519_seed_keypair(sk, pk, sk2);
  int ok = rc == 0 && teex_ct_equal(sk2, sk, 64);
  teex_wipe(sk2, sizeof sk2);
  if (!ok)
    return teex_err_set(err, TEEX_EFORMAT, "%s: key pair inconsistent", what);
  return 0;
}

int teex_sim_root_parse(const uint8_t *p, size_t len, uint8_t sk[64],
                        struct teex_err *err) {
  int rc = check_header(p, len, TEEX_SIM_ROOT_FILE_LEN, ROOT_MAGIC,
                        "root key file", err);
  if (rc != 0)
    return rc;
  if ((rc = check_keypair(p + 8, "root key file", err)) != 0)
    return rc;
  memcpy(sk, p + 8, 64);
  return 0;
}

int teex_sim_platform_parse(const uint8_t *p, size_t len,
                            struct teex_sim_platform *out,
                            struct teex_err *err) {
  int rc = check_header(p, len, TEEX_SIM_PLATFORM_FILE_LEN, PLATFORM_MAGIC,
                        "platform key file", err);
  if (rc != 0)
    return rc;
  if ((rc = check_keypair(p + 8, "platform key file", err)) != 0)
    return rc;
  memcpy(out->sk, p + 8, 64);
  memcpy(out->pub, p + 8 + 32, 32);
  memcpy(out->seal_secret, p + 72, 32);
  memcpy(out->root_pub, p + 104, 32);
  memcpy(out->cert_sig, p + 136, 64);
  uint8_t msg[TEEX_SIM_CERT_MSG_LEN];
  teex_sim_cert_message(out->root_pub, out->pub, msg);
  if (teex_ed25519_verify(out->root_pub, msg, sizeof msg, out->cert_sig) != 0)
    return teex_err_set(err, TEEX_EFORMAT,
                        "platform key file: certificate signature invalid");
  return 0;
}

static int tee_path(char out[PATH_MAX], const char *dir, const char *name,
                    struct teex_err *err) {
  int n = snprintf(out, PATH_MAX, "%s/tee%s%s", dir, name[0] ? "/" : "", name);
  if (n < 0 || n >= PATH_MAX)
    return teex_err_set(err, TEEX_EINVAL, "data directory path too long");
  return 0;
}

/* Reads exactly want bytes of a key file into buf (caller's secret memory).
 * Refuses a file that group or others can access. */
static int read_key_file(const char *path, uint8_t *buf, size_t want,
                         int secret, struct teex_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT)
      return teex_err_set(err, TEEX_ENOTFOUND,
                          "%s missing (run `teex tee init`)", path);
    return teex_err_set(err, TEEX_EIO, "open %s: %s", path, strerror(errno));
  }
  int rc = 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = teex_err_set(err, TEEX_EIO, "%s is not a regular file", path);
    goto out;
  }
  if (secret && (st.st_mode & 077)) {
    rc = teex_err_set(err, TEEX_EPERM,
                      "%s is accessible by other users (chmod 600 it)", path);
    goto out;
  }
  if ((size_t)st.st_size != want) {
    rc = teex_err_set(err, TEEX_EFORMAT, "%s is %lld bytes, expected %zu", path,
                      (long long)st.st_size, want);
    goto out;
  }
  size_t got = 0;
  while (got < want) {
    ssize_t r = read(fd, buf + got, want - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      rc = teex_err_set(err, TEEX_EIO, "reading %s failed", path);
      goto out;
    }
    got += (size_t)r;
  }
out:
  close(fd);
  return rc;
}

/* Creates path exclusively with mode, writes p, fsyncs. */
static int write_new_file(const char *path, const void *p, size_t n, int mode,
                          struct teex_err *err) {
  int fd =
      open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return teex_err_set(err, TEEX_EEXIST, "%s already exists", path);
    return teex_err_set(err, TEEX_EIO, "create %s: %s", path, strerror(errno));
  }
  const uint8_t *b = p;
  size_t off = 0;
  int rc = 0;
  while (off < n) {
    ssize_t w = write(fd, b + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      rc = teex_err_set(err, errno == ENOSPC ? TEEX_ENOSPC : TEEX_EIO,
                        "write %s: %s", path, strerror(errno));
      break;
    }
    off += (size_t)w;
  }
  if (rc == 0 && fsync(fd) != 0)
    rc = teex_err_set(err, TEEX_EIO, "fsync %s: %s", path, strerror(errno));
  close(fd);
  if (rc != 0)
    unlink(path);
  return rc;
}

int teex_sim_platform_load(const char *data_dir, struct teex_sim_platform **out,
                           struct teex_err *err) {
  *out = NULL;
  char path[PATH_MAX];
  int rc = tee_path(path, data_dir, "platform.key", err);
  if (rc != 0)
    return rc;
  uint8_t *raw = teex_secret_alloc(TEEX_SIM_PLATFORM_FILE_LEN);
  struct teex_sim_platform *p = teex_secret_alloc(sizeof *p);
  if (raw == NULL || p == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "cannot allocate locked memory");
    goto fail;
  }
  rc = read_key_file(path, raw, TEEX_SIM_PLATFORM_FILE_LEN, 1, err);
  if (rc == 0)
    rc = teex_sim_platform_parse(raw, TEEX_SIM_PLATFORM_FILE_LEN, p, err);
  if (rc != 0) {
    teex_err_wrap(err, 0, "sim platform");
    goto fail;
  }
  teex_secret_free(raw);
  *out = p;
  return 0;
fail:
  teex_secret_free(raw);
  teex_secret_free(p);
  return rc;
}

void teex_sim_platform_free(struct teex_sim_platform *p) {
  teex_secret_free(p);
}

static int mkdir_private(const char *path, struct teex_err *err) {
  if (mkdir(path, 0700) != 0 && errno != EEXIST)
    return teex_err_set(err, TEEX_EIO, "mkdir %s: %s", path, strerror(errno));
  return 0;
}

/* Loads DIR/tee/root.key, or creates it (and root.pub) when absent. */
static int load_or_create_root(const char *data_dir, uint8_t *sk,
                               struct teex_err *err) {
  char path[PATH_MAX], pubpath[PATH_MAX];
  int rc = tee_path(path, data_dir, "root.key", err);
  if (rc == 0)
    rc = tee_path(pubpath, data_dir, "root.pub", err);
  if (rc != 0)
    return rc;
  uint8_t file[TEEX_SIM_ROOT_FILE_LEN];
  rc = read_key_file(path, file, sizeof file, 1, err);
  if (rc == 0) {
    rc = teex_sim_root_parse(file, sizeof file, sk, err);
    teex_wipe(file, sizeof file);
    return rc != 0 ? teex_err_wrap(err, 0, "%s", path) : 0;
  }
  if (rc != TEEX_ENOTFOUND)
    return rc;
  teex_err_clear(err);
  uint8_t pk[32];
  if (teex_ed25519_keypair(pk, sk) != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "root key generation failed");
  memcpy(file, ROOT_MAGIC, 4);
  tee_put16(file + 4, 1);
  tee_put16(file + 6, 0);
  memcpy(file + 8, sk, 64);
  rc = write_new_file(path, file, sizeof file, 0600, err);
  teex_wipe(file, sizeof file);
  if (rc != 0)
    return rc;
  char hex[66];
  teex_hex_encode(pk, 32, hex);
  hex[64] = '\n';
  hex[65] = '\0';
  unlink(pubpath); /* a stale public key must not survive a new root */
  return write_new_file(pubpath, hex, 65, 0644, err);
}

int teex_tee_sim_init(const char *data_dir, uint8_t root_pub[32],
                      struct teex_err *err) {
  char dir[PATH_MAX], ppath[PATH_MAX];
  int rc = mkdir_private(data_dir, err);
  if (rc == 0)
    rc = tee_path(dir, data_dir, "", err);
  if (rc == 0)
    rc = mkdir_private(dir, err);
  if (rc == 0)
    rc = tee_path(ppath, data_dir, "platform.key", err);
  if (rc != 0)
    return rc;
  if (access(ppath, F_OK) == 0)
    return teex_err_set(err, TEEX_EEXIST,
                        "%s already exists (this platform is initialised)",
                        ppath);
  uint8_t *root_sk = teex_secret_alloc(64);
  uint8_t *file = teex_secret_alloc(TEEX_SIM_PLATFORM_FILE_LEN);
  if (root_sk == NULL || file == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "cannot allocate locked memory");
    goto out;
  }
  rc = load_or_create_root(data_dir, root_sk, err);
  if (rc != 0)
    goto out;
  const uint8_t *rpub = root_sk + 32;
  memcpy(file, PLATFORM_MAGIC, 4);
  tee_put16(file + 4, 1);
  tee_put16(file + 6, 0);
  uint8_t ppub[32];
  if (teex_ed25519_keypair(ppub, file + 8) != 0) {
    rc = teex_err_set(err, TEEX_ECRYPTO, "platform key generation failed");
    goto out;
  }
  teex_random(file + 72, 32);
  memcpy(file + 104, rpub, 32);
  uint8_t msg[TEEX_SIM_CERT_MSG_LEN];
  teex_sim_cert_message(rpub, ppub, msg);
  if (teex_ed25519_sign(root_sk, msg, sizeof msg, file + 136) != 0) {
    rc = teex_err_set(err, TEEX_ECRYPTO, "certifying the platform failed");
    goto out;
  }
  rc = write_new_file(ppath, file, TEEX_SIM_PLATFORM_FILE_LEN, 0600, err);
  if (rc == 0 && root_pub != NULL)
    memcpy(root_pub, rpub, 32);
out:
  teex_secret_free(file);
  teex_secret_free(root_sk);
  return rc != 0 ? teex_err_wrap(err, 0, "tee init") : 0;
}

int teex_tee_sim_root(const char *data_dir, uint8_t root_pub[32],
                      struct teex_err *err) {
  struct teex_sim_platform *p;
  int rc = teex_sim_platform_load(data_dir, &p, err);
  if (rc != 0)
    return rc;
  memcpy(root_pub, p->root_pub, 32);
  teex_sim_platform_free(p);
  return 0;
}
