/* teex service: pack, inspect, encrypt and decrypt service images.
 *
 * `teex service run` (the sandboxed local run) belongs to the executor; its
 * handler lives in src/cli/cmd_service_run.c and takes the line marked
 * below in the table. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"

/* Writes p to path atomically (temp file + rename), mode for a new file. */
static int write_atomic(const char *path, const uint8_t *p, size_t n,
                        mode_t mode) {
  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
      sizeof tmp)
    return teex_cli_fail("%s: path too long", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return teex_cli_fail("%s: %s", tmp, strerror(errno));
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, p + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  int ok = off == n && fsync(fd) == 0;
  if (close(fd) != 0)
    ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return teex_cli_fail("%s: cannot write: %s", path, strerror(e));
  }
  return 0;
}

/* Reads a whole file of at most max bytes (malloc'd). */
static int read_all(const char *path, size_t max, uint8_t **out,
                    size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return teex_cli_fail("%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size > max) {
    close(fd);
    return teex_cli_fail("%s: not a regular file of at most %zu bytes", path,
                         max);
  }
  size_t cap = (size_t)st.st_size, len = 0;
  uint8_t *b = malloc(cap ? cap : 1);
  if (b == NULL) {
    close(fd);
    return teex_cli_fail("%s: out of memory", path);
  }
  while (len < cap) {
    ssize_t r = read(fd, b + len, cap - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  if (len != cap) {
    teex_image_bytes_free(b, cap);
    return teex_cli_fail("%s: short read", path);
  }
  *out = b;
  *out_len = len;
  return 0;
}

/* Reads a 32-byte key stored as 64 hex digits (optional trailing newline). */
static int read_key_file(const char *path, uint8_t key[32]) {
  uint8_t *b;
  size_t n;
  if (read_all(path, 256, &b, &n) != 0)
    return TEEX_EXIT_FAIL;
  char hex[65];
  size_t h = 0;
  int ok = 1;
  for (size_t i = 0; i < n; i++) {
    if (b[i] == '\n' || b[i] == '\r' || b[i] == ' ')
      continue;
    if (h == 64) {
      ok = 0;
      break;
    }
    hex[h++] = (char)b[i];
  }
  hex[h] = '\0';
  size_t klen = 0;
  if (ok &&
      (h != 64 || teex_hex_decode(hex, key, 32, &klen) != 0 || klen != 32))
    ok = 0;
  teex_wipe(hex, sizeof hex);
  teex_image_bytes_free(b, n);
  if (!ok)
    return teex_cli_fail("%s: expected a key of 64 hex digits", path);
  return 0;
}

static int write_key_file(const char *path, const uint8_t key[32]) {
  char hex[66];
  teex_hex_encode(key, 32, hex);
  hex[64] = '\n';
  hex[65] = '\0';
  int rc = write_atomic(path, (const uint8_t *)hex, 65, 0600);
  teex_wipe(hex, sizeof hex);
  return rc;
}

static int cmd_pack(int argc, char **argv) {
  static const char usage[] =
      "usage: teex service pack DIR -o FILE\n\n"
      "Packs the service folder DIR (teex.toml + Python files) into a\n"
      "deterministic image archive FILE and prints its image hash (SHA-256\n"
      "of FILE). Every Python file is compiled (never run) to catch syntax\n"
      "errors. Hidden files, __pycache__ and *.pyc are left out.\n\n"
      "  -o, --output FILE   where to write the image\n";
  static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *output = NULL;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    if (c == 'o') {
      output = optarg;
    } else if (c == 'h') {
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    } else {
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc - 1 || output == NULL) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_image *img;
  uint8_t *a;
  size_t alen;
  if (teex_image_pack(argv[optind], &img, &a, &alen, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  int rc = write_atomic(output, a, alen, 0644);
  if (rc == 0) {
    char hex[65];
    teex_image_hash_hex(img->hash, hex);
    fprintf(stderr, "packed %s %s: %zu files, %zu bytes -> %s\n",
            img->manifest.name, img->manifest.version, img->nfiles, alen,
            output);
    printf("%s\n", hex);
  }
  teex_image_bytes_free(a, alen);
  teex_image_free(img);
  return rc == 0 ? TEEX_EXIT_OK : TEEX_EXIT_FAIL;
}

/* Prints text, replacing anything but printable ASCII and UTF-8 with '?'. */
static void print_safe(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    fputc(*p >= 0x20 && *p != 0x7f ? *p : '?', stdout);
}

static int cmd_inspect(int argc, char **argv) {
  static const char usage[] =
      "usage: teex service inspect FILE|DIR [--key-file F | --secret-key-file "
      "F]\n\n"
      "Prints an image's manifest, its files and its image hash. A folder is\n"
      "packed in memory first. An encrypted image needs its image key\n"
      "(--key-file, 64 hex digits) and is decrypted in memory only.\n";
  static const struct option opts[] = {{"key-file", required_argument, 0, 'k'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *keyfile = NULL;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
    if (c == 'k') {
      keyfile = optarg;
    } else if (c == 'h') {
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    } else {
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  uint8_t key[32];
  if (keyfile != NULL && read_key_file(keyfile, key) != 0)
    return TEEX_EXIT_FAIL;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_image *img;
  int rc = teex_image_load(argv[optind], keyfile ? key : NULL, &img, &err);
  teex_wipe(key, sizeof key);
  if (rc != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  const struct teex_manifest *m = &img->manifest;
  char hex[65];
  teex_image_hash_hex(img->hash, hex);
  printf("image_hash: %s\nname: %s\nversion: %s\nentry: %s\nstyle: %s\n"
         "python: %s\nstateless: %s\nfull_tracebacks: %s\ndescription: ",
         hex, m->name, m->version, m->entry,
         m->style == TEEX_STYLE_SCRIPT ? "script" : "function", m->python,
         m->stateless ? "true" : "false",
         m->full_tracebacks ? "true" : "false");
  print_safe(m->description);
  printf("\nlimits: cpu_ms=%u wall_ms=%u memory_mb=%u output_bytes=%u "
         "threads=%u (0 = executor default)\nfiles: %zu\n",
         m->limits.cpu_ms, m->limits.wall_ms, m->limits.memory_mb,
         m->limits.output_bytes, m->limits.threads, img->nfiles);
  size_t total = 0;
  for (size_t i = 0; i < img->nfiles; i++) {
    printf("  %10zu  %s\n", img->files[i].len, img->files[i].path);
    total += img->files[i].len;
  }
  printf("total_bytes: %zu\n", total);
  teex_image_free(img);
  return TEEX_EXIT_OK;
}

static int cmd_keygen(int argc, char **argv) {
  static const char usage[] =
      "usage: teex service keygen -o KEYFILE [--x25519]\n\n"
      "Writes a fresh random 32-byte image key (64 hex digits, mode 0600) to\n"
      "KEYFILE. With --x25519 it writes an X25519 secret key instead and\n"
      "prints its public key (hex) for `teex service encrypt --to`.\n";
  static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                       {"x25519", no_argument, 0, 'x'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *output = NULL;
  int x = 0;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "o:xh", opts, NULL)) != -1) {
    if (c == 'o') {
      output = optarg;
    } else if (c == 'x') {
      x = 1;
    } else if (c == 'h') {
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    } else {
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc || output == NULL) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  uint8_t sk[32], pk[32];
  teex_random(sk, sizeof sk);
  int rc = write_key_file(output, sk);
  if (rc == 0 && x) {
    if (teex_x25519_public(sk, pk) != 0) {
      rc = teex_cli_fail("cannot derive the X25519 public key");
    } else {
      char hex[65];
      teex_hex_encode(pk, 32, hex);
      printf("%s\n", hex);
    }
  }
  teex_wipe(sk, sizeof sk);
  return rc == 0 ? TEEX_EXIT_OK : TEEX_EXIT_FAIL;
}

/* encrypt and decrypt share their option parsing. */
static int cmd_crypt(int argc, char **argv, int encrypt) {
  static const char enc_usage[] =
      "usage: teex service encrypt FILE -o OUT (--key-file KEYFILE | --to "
      "PUBHEX)\n\n"
      "Encrypts an image archive: under a 32-byte image key read from\n"
      "KEYFILE (64 hex digits; see `teex service keygen`), or to an X25519\n"
      "public key. Chunked XChaCha20-Poly1305 (docs/internals/image.md).\n";
  static const char dec_usage[] =
      "usage: teex service decrypt FILE -o OUT (--key-file KEYFILE | "
      "--secret-key-file SKFILE)\n\n"
      "Decrypts an encrypted image into the plain archive OUT, refusing any\n"
      "tampered, truncated or reordered input. A development tool: workers\n"
      "decrypt images in memory only.\n";
  const char *usage = encrypt ? enc_usage : dec_usage;
  static const struct option opts[] = {
      {"output", required_argument, 0, 'o'},
      {"key-file", required_argument, 0, 'k'},
      {"to", required_argument, 0, 't'},
      {"secret-key-file", required_argument, 0, 's'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *output = NULL, *keyfile = NULL, *to = NULL, *skfile = NULL;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "o:k:h", opts, NULL)) != -1) {
    switch (c) {
    case 'o':
      output = optarg;
      break;
    case 'k':
      keyfile = optarg;
      break;
    case 't':
      to = encrypt ? optarg : NULL;
      if (!encrypt)
        return fputs(usage, stderr), TEEX_EXIT_USAGE;
      break;
    case 's':
      skfile = encrypt ? NULL : optarg;
      if (encrypt)
        return fputs(usage, stderr), TEEX_EXIT_USAGE;
      break;
    case 'h':
      fputs(usage, stdout);
      return TEEX_EXIT_OK;
    default:
      fputs(usage, stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  int nkeys = (keyfile != NULL) + (to != NULL) + (skfile != NULL);
  if (optind != argc - 1 || output == NULL || nkeys != 1) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  uint8_t key[32];
  if (to != NULL) {
    size_t n = 0;
    if (teex_hex_decode(to, key, 32, &n) != 0 || n != 32)
      return teex_cli_fail("--to: expected an X25519 public key of 64 hex "
                           "digits");
  } else if (read_key_file(keyfile ? keyfile : skfile, key) != 0) {
    return TEEX_EXIT_FAIL;
  }
  uint8_t *in = NULL, *out = NULL;
  size_t in_len = 0, out_len = 0;
  int rc = read_all(argv[optind],
                    encrypt ? TEEX_IMAGE_ARCHIVE_MAX : TEEX_IMAGE_ENC_MAX, &in,
                    &in_len);
  if (rc != 0)
    goto done;
  struct teex_err err;
  teex_err_clear(&err);
  if (encrypt) {
    /* Only a valid image is worth encrypting: catch a wrong file early. */
    struct teex_image *img;
    if (teex_image_parse(in, in_len, &img, &err) != 0) {
      rc = teex_cli_fail("%s: %s", argv[optind], teex_err_msg(&err));
      goto done;
    }
    teex_image_free(img);
    rc = to ? teex_image_seal(key, in, in_len, &out, &out_len, &err)
            : teex_image_encrypt(key, in, in_len, &out, &out_len, &err);
  } else {
    rc = skfile ? teex_image_open(key, in, in_len, &out, &out_len, &err)
                : teex_image_decrypt(key, in, in_len, &out, &out_len, &err);
  }
  if (rc != 0) {
    rc = teex_cli_fail("%s: %s", argv[optind], teex_err_msg(&err));
    goto done;
  }
  rc = write_atomic(output, out, out_len, 0644);
done:
  teex_wipe(key, sizeof key);
  teex_image_bytes_free(in, in_len);
  teex_image_bytes_free(out, out_len);
  return rc == 0 ? TEEX_EXIT_OK : TEEX_EXIT_FAIL;
}

static int cmd_encrypt(int argc, char **argv) {
  return cmd_crypt(argc, argv, 1);
}

static int cmd_decrypt(int argc, char **argv) {
  return cmd_crypt(argc, argv, 0);
}

static const struct teex_cli_cmd service_cmds[] = {
    {"pack", cmd_pack, "pack a service folder into a deterministic image"},
    {"inspect", cmd_inspect, "show an image's manifest, files and hash"},
    {"keygen", cmd_keygen, "make an image key (or an X25519 key pair)"},
    {"encrypt", cmd_encrypt, "encrypt an image to an image key or recipient"},
    {"decrypt", cmd_decrypt, "decrypt an encrypted image (development tool)"},
    {"list", teex_cmd_service_list,
     "the app store: services on chain with their descriptions"},
    {"deploy", teex_cmd_service_deploy,
     "deploy a service: encrypt, store, register with the SM"},
    {"access", teex_cmd_service_access,
     "make a listed service private or public, allow or deny callers"},
    {"run", teex_cmd_service_run,
     "run a service locally in the worker's sandbox"}, /* cmd_service_run.c */
    {NULL, NULL, NULL},
};

int teex_cmd_service(int argc, char **argv) {
  return teex_cli_dispatch("teex service", service_cmds, argc - 1, argv + 1);
}
