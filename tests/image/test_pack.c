/* Packing folders: every validation error, reproducibility, the archive
 * round trip and the parser's refusals. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/image.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

static const char manifest[] = "[service]\nname = \"svc\"\nversion = "
                               "\"1.0\"\nentry = \"main.py\"\n";

static void put(const char *dir, const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  /* Make the parent folders. */
  for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
    *p = '\0';
    mkdir(path, 0755);
    *p = '/';
  }
  assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

/* A fresh service folder with a manifest, main.py and a package. */
static char *make_service(const char *name) {
  static char dir[1024];
  snprintf(dir, sizeof dir, "%s/%s", tmp, name);
  assert_int_equal(mkdir(dir, 0755), 0);
  put(dir, "teex.toml", manifest);
  put(dir, "main.py",
      "import pkg.util\n\ndef main(x):\n    return "
      "pkg.util.double(x)\n");
  put(dir, "pkg/__init__.py", "");
  put(dir, "pkg/util.py", "def double(x):\n    return x + x\n");
  put(dir, "data/table.json", "{\"k\": [1, 2, 3]}\n");
  return dir;
}

static int pack_err(const char *dir, struct teex_err *err) {
  struct teex_image *img = NULL;
  uint8_t *a = NULL;
  size_t alen = 0;
  teex_err_clear(err);
  int rc = teex_image_pack(dir, &img, &a, &alen, err);
  if (rc == 0) {
    assert_non_null(img);
    teex_image_free(img);
    teex_image_bytes_free(a, alen);
  } else {
    assert_null(img);
    assert_null(a);
  }
  return rc;
}

#define EXPECT_PACK_ERROR(dir, code, needle)                                   \
  do {                                                                         \
    struct teex_err e_;                                                        \
    int rc_ = pack_err(dir, &e_);                                              \
    if (rc_ != (code) || strstr(e_.msg, needle) == NULL)                       \
      fail_msg("pack %s: rc %d \"%s\", want %d with \"%s\"", dir, rc_, e_.msg, \
               code, needle);                                                  \
  } while (0)

static int setup(void **state) {
  (void)state;
  teex_crypto_init();
  tmp = tu_mkdtemp("image");
  return tmp ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  tu_rmtree(tmp);
  free(tmp);
  return 0;
}

static void test_pack_round_trip(void **state) {
  (void)state;
  char *dir = make_service("rt");
  /* Skipped: caches, bytecode, hidden files and folders. */
  put(dir, "__pycache__/main.cpython-311.pyc", "junk");
  put(dir, "pkg/__pycache__/util.cpython-311.pyc", "junk");
  put(dir, "stale.pyc", "junk");
  put(dir, ".git/config", "junk");
  put(dir, ".hidden.py", "this is not python");
  struct teex_image *img;
  uint8_t *a;
  size_t alen;
  struct teex_err err;
  assert_int_equal(teex_image_pack(dir, &img, &a, &alen, &err), 0);
  assert_int_equal(img->nfiles, 4);
  assert_string_equal(img->files[0].path, "data/table.json");
  assert_string_equal(img->files[1].path, "main.py");
  assert_string_equal(img->files[2].path, "pkg/__init__.py");
  assert_string_equal(img->files[3].path, "pkg/util.py");
  assert_null(teex_image_find(img, "teex.toml"));
  assert_null(teex_image_find(img, "stale.pyc"));
  uint8_t h[32];
  teex_sha256(a, alen, h);
  assert_memory_equal(h, img->hash, 32);

  struct teex_image *back;
  assert_int_equal(teex_image_parse(a, alen, &back, &err), 0);
  assert_memory_equal(&back->manifest, &img->manifest, sizeof img->manifest);
  assert_memory_equal(back->hash, img->hash, 32);
  assert_int_equal(back->nfiles, img->nfiles);
  for (size_t i = 0; i < img->nfiles; i++) {
    assert_string_equal(back->files[i].path, img->files[i].path);
    assert_int_equal(back->files[i].len, img->files[i].len);
    assert_memory_equal(back->files[i].data, img->files[i].data,
                        img->files[i].len);
  }
  const struct teex_image_file *f = teex_image_find(back, "pkg/util.py");
  assert_non_null(f);
  assert_int_equal(f->len, strlen("def double(x):\n    return x + x\n"));
  assert_memory_equal(f->data, "def double", 10);
  assert_null(teex_image_find(back, "pkg/missing.py"));
  assert_null(teex_image_find(back, "pkg"));
  /* Re-encoding a parsed image gives the same bytes. */
  uint8_t *a2;
  size_t alen2;
  assert_int_equal(teex_image_encode(back, &a2, &alen2, &err), 0);
  assert_int_equal(alen2, alen);
  assert_memory_equal(a2, a, alen);
  teex_image_bytes_free(a2, alen2);
  teex_image_free(back);
  teex_image_free(img);
  teex_image_bytes_free(a, alen);
}

static uint8_t *pack_bytes(const char *dir, size_t *len) {
  struct teex_image *img;
  uint8_t *a;
  struct teex_err err;
  if (teex_image_pack(dir, &img, &a, len, &err) != 0)
    fail_msg("pack %s: %s", dir, err.msg);
  teex_image_free(img);
  return a;
}

static void test_pack_reproducible(void **state) {
  (void)state;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", make_service("repro"));
  size_t l1, l2, l3, l4;
  uint8_t *a1 = pack_bytes(dir, &l1);
  uint8_t *a2 = pack_bytes(dir, &l2);
  assert_int_equal(l1, l2);
  assert_memory_equal(a1, a2, l1);

  /* New timestamps and modes on every file change nothing. */
  char path[1200];
  const char *files[] = {"main.py", "pkg/util.py", "data/table.json",
                         "teex.toml"};
  struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
  for (size_t i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(chmod(path, 0600), 0);
  }
  uint8_t *a3 = pack_bytes(dir, &l3);
  assert_int_equal(l1, l3);
  assert_memory_equal(a1, a3, l1);

  /* A copy elsewhere, made in a different order, packs the same. */
  char copy[1024];
  snprintf(copy, sizeof copy, "%s/elsewhere/deeper/copy", tmp);
  char *mk[] = {"/bin/mkdir", "-p", copy, NULL};
  assert_int_equal(tu_run(mk, NULL, 0, NULL, NULL), 0);
  put(copy, "pkg/util.py", "def double(x):\n    return x + x\n");
  put(copy, "data/table.json", "{\"k\": [1, 2, 3]}\n");
  put(copy, "pkg/__init__.py", "");
  put(copy, "main.py",
      "import pkg.util\n\ndef main(x):\n    return "
      "pkg.util.double(x)\n");
  /* Comments and key order in teex.toml do not matter: the archive holds
   * the canonical manifest. */
  put(copy, "teex.toml",
      "# copied\n[service]\nentry = \"main.py\"\nversion "
      "= \"1.0\"\nname = \"svc\"\n");
  uint8_t *a4 = pack_bytes(copy, &l4);
  assert_int_equal(l1, l4);
  assert_memory_equal(a1, a4, l1);

  /* One changed byte of code changes the hash. */
  put(copy, "pkg/util.py", "def double(x):\n    return x * 2\n");
  size_t l5;
  uint8_t *a5 = pack_bytes(copy, &l5);
  uint8_t h1[32], h5[32];
  teex_image_hash(a1, l1, h1);
  teex_image_hash(a5, l5, h5);
  assert_memory_not_equal(h1, h5, 32);
  free(a1);
  free(a2);
  free(a3);
  free(a4);
  free(a5);
}

static void test_pack_errors(void **state) {
  (void)state;
  char *dir;
  char path[1200], target[1200];

  dir = make_service("nomanifest");
  snprintf(path, sizeof path, "%s/teex.toml", dir);
  unlink(path);
  EXPECT_PACK_ERROR(dir, TEEX_ENOTFOUND, "no teex.toml");

  EXPECT_PACK_ERROR("/nonexistent/folder", TEEX_ENOTFOUND, "not a folder");

  dir = make_service("noentry");
  snprintf(path, sizeof path, "%s/main.py", dir);
  unlink(path);
  EXPECT_PACK_ERROR(dir, TEEX_ENOTFOUND, "entry point main.py");

  dir = make_service("badfield");
  put(dir, "teex.toml",
      "[service]\nname = \"svc\"\nversion = \"1.0\"\n"
      "entry = \"main.py\"\nmemory_mb = 64\n");
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "unknown field \"service.memory_mb\"");

  dir = make_service("syntax");
  put(dir, "pkg/broken.py", "x = 1\n\ndef f(:\n    pass\n");
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pkg/broken.py:3:");

  dir = make_service("indent");
  put(dir, "main.py", "def main(x):\nreturn x\n");
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "main.py:2:");

  dir = make_service("nulbyte");
  snprintf(path, sizeof path, "%s/pkg/nul.py", dir);
  assert_int_equal(tu_write_file(path, "x = 1\0\n", 7), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pkg/nul.py");

  dir = make_service("badutf8");
  put(dir, "pkg/latin.py", "s = '\xe9t\xe9'\n");
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pkg/latin.py");

  /* A syntax error in a file never imported is still an error, and the
   * check never runs code: this file would create a marker if run. */
  dir = make_service("norun");
  snprintf(target, sizeof target, "%s/ran-marker", tmp);
  snprintf(path, sizeof path, "open(%s%s%s, 'w').write('x')\n", "'", target,
           "'");
  put(dir, "side_effect.py", path);
  {
    struct teex_err e;
    assert_int_equal(pack_err(dir, &e), 0);
    assert_int_equal(access(target, F_OK), -1);
  }

  dir = make_service("bigfile");
  snprintf(path, sizeof path, "%s/data/big.bin", dir);
  int fd = open(path, O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, TEEX_IMAGE_FILE_SIZE_MAX + 1), 0);
  close(fd);
  EXPECT_PACK_ERROR(dir, TEEX_ETOOBIG, "data/big.bin: file too large");

  dir = make_service("bigtotal");
  for (int i = 0; i < 9; i++) {
    snprintf(path, sizeof path, "%s/data/part%d.bin", dir, i);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, TEEX_IMAGE_FILE_SIZE_MAX), 0);
    close(fd);
  }
  EXPECT_PACK_ERROR(dir, TEEX_ETOOBIG, "service too large");

  dir = make_service("escape");
  snprintf(path, sizeof path, "%s/leak.py", dir);
  assert_int_equal(symlink("/etc/passwd", path), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "leak.py: symlink escapes");

  dir = make_service("escape2");
  snprintf(target, sizeof target, "%s/outside.py", tmp);
  assert_int_equal(tu_write_file(target, "x = 1\n", 6), 0);
  snprintf(path, sizeof path, "%s/pkg/rel.py", dir);
  assert_int_equal(symlink("../../outside.py", path), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pkg/rel.py: symlink escapes");

  dir = make_service("dangling");
  snprintf(path, sizeof path, "%s/gone.py", dir);
  assert_int_equal(symlink("nothing-here.py", path), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "gone.py: symlink does not resolve");

  dir = make_service("dirlink");
  snprintf(path, sizeof path, "%s/pkg2", dir);
  assert_int_equal(symlink("pkg", path), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pkg2: symlink to something other");

  dir = make_service("fifo");
  snprintf(path, sizeof path, "%s/pipe", dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pipe: not a regular file");

  dir = make_service("nonutf8name");
  snprintf(path, sizeof path, "%s/caf\xff.py", dir);
  assert_int_equal(tu_write_file(path, "x = 1\n", 6), 0);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "byte 0xff");

  dir = make_service("spacename");
  put(dir, "my module.py", "x = 1\n");
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "byte 0x20");

  dir = make_service("longpath");
  char longname[300];
  memset(longname, 'a', 200);
  memcpy(longname + 200, "/", 1);
  memset(longname + 201, 'b', 60);
  memcpy(longname + 261, ".py", 4);
  put(dir, longname, "x = 1\n");
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "longer than 255");

  dir = make_service("toomany");
  for (int i = 0; i < TEEX_IMAGE_FILES_MAX; i++) {
    snprintf(path, sizeof path, "%s/data/f%04d", dir, i);
    assert_int_equal(tu_write_file(path, "", 0), 0);
  }
  EXPECT_PACK_ERROR(dir, TEEX_ETOOBIG, "too many files");
}

/* With SIGCHLD ignored the checker's verdict is lost: packing must fail
 * rather than pass code nobody compiled. */
static void test_pack_checker_status_lost(void **state) {
  (void)state;
  char *dir = make_service("sigchld");
  put(dir, "pkg/broken.py", "def f(:\n");
  void (*old)(int) = signal(SIGCHLD, SIG_IGN);
  EXPECT_PACK_ERROR(dir, TEEX_EINTERNAL, "lost the checker's status");
  signal(SIGCHLD, old);
  EXPECT_PACK_ERROR(dir, TEEX_EINVAL, "pkg/broken.py:1:");
}

static void test_pack_symlink_inside(void **state) {
  (void)state;
  char *dir = make_service("linkin");
  char path[1200];
  snprintf(path, sizeof path, "%s/pkg/alias.py", dir);
  assert_int_equal(symlink("util.py", path), 0);
  struct teex_image *img;
  uint8_t *a;
  size_t alen;
  struct teex_err err;
  assert_int_equal(teex_image_pack(dir, &img, &a, &alen, &err), 0);
  const struct teex_image_file *f = teex_image_find(img, "pkg/alias.py");
  const struct teex_image_file *g = teex_image_find(img, "pkg/util.py");
  assert_non_null(f);
  assert_non_null(g);
  assert_int_equal(f->len, g->len);
  assert_memory_equal(f->data, g->data, f->len);
  teex_image_free(img);
  teex_image_bytes_free(a, alen);
}

static void test_parse_refusals(void **state) {
  (void)state;
  char *dir = make_service("parse");
  size_t alen;
  uint8_t *a = pack_bytes(dir, &alen);
  struct teex_image *img;
  struct teex_err err;

  /* Every proper prefix is refused, never read past. */
  for (size_t n = 0; n < alen; n++) {
    uint8_t *cut = malloc(n ? n : 1);
    memcpy(cut, a, n);
    int rc = teex_image_parse(cut, n, &img, &err);
    if (rc == 0)
      fail_msg("prefix of %zu bytes accepted", n);
    assert_null(img);
    free(cut);
  }
  /* Trailing garbage. */
  uint8_t *longer = malloc(alen + 1);
  memcpy(longer, a, alen);
  longer[alen] = 0;
  assert_int_equal(teex_image_parse(longer, alen + 1, &img, &err),
                   TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, "trailing"));
  free(longer);

  uint8_t *c = malloc(alen);
  /* Version. */
  memcpy(c, a, alen);
  c[11] = 2;
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_EVERSION);
  /* Magic. */
  memcpy(c, a, alen);
  c[0] = 'X';
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_EFORMAT);
  /* Non-canonical manifest (a space where canonical text has none). */
  memcpy(c, a, alen);
  uint8_t *eq = memmem(c + 16, 64, "name = ", 7);
  assert_non_null(eq);
  eq[4] = '\t';
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, "canonical"));
  /* A path with "..": same length as "main.py". */
  memcpy(c, a, alen);
  uint8_t *mp = memmem(c, alen, "main.py", 7);
  mp = memmem(mp + 7, alen - (size_t)(mp + 7 - c), "main.py", 7);
  assert_non_null(mp); /* the file entry (the first hit is the manifest) */
  memcpy(mp, "../a.py", 7);
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_EFORMAT);
  /* Files out of order: rename main.py so it sorts before data/. */
  memcpy(c, a, alen);
  memcpy(mp, "maim.py", 7);
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "entry point main.py is not in"));
  memcpy(mp, "zzzz.py", 7);
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, "out of order"));
  /* A huge file count is refused before any allocation. */
  memcpy(c, a, alen);
  uint32_t mlen = ((uint32_t)c[12] << 24) | ((uint32_t)c[13] << 16) |
                  ((uint32_t)c[14] << 8) | c[15];
  uint8_t *cnt = c + 16 + mlen;
  cnt[0] = 0xff;
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_ETOOBIG);
  cnt[0] = 0;
  cnt[2] = 0x0f; /* 3844 files in a few hundred bytes */
  assert_int_equal(teex_image_parse(c, alen, &img, &err), TEEX_ETRUNC);
  free(c);
  free(a);
  /* Oversized input is refused up front. */
  assert_int_equal(teex_image_parse((const uint8_t *)"",
                                    TEEX_IMAGE_ARCHIVE_MAX + 1ul, &img, &err),
                   TEEX_ETOOBIG);
}

static void test_load(void **state) {
  (void)state;
  char *dir = make_service("load");
  size_t alen;
  uint8_t *a = pack_bytes(dir, &alen);
  char plain[1200], enc[1200];
  snprintf(plain, sizeof plain, "%s/svc.img", tmp);
  snprintf(enc, sizeof enc, "%s/svc.img.enc", tmp);
  assert_int_equal(tu_write_file(plain, a, alen), 0);
  uint8_t key[32];
  teex_random(key, sizeof key);
  uint8_t *ct;
  size_t ctlen;
  struct teex_err err;
  assert_int_equal(teex_image_encrypt(key, a, alen, &ct, &ctlen, &err), 0);
  assert_int_equal(tu_write_file(enc, ct, ctlen), 0);

  struct teex_image *i1, *i2, *i3, *i4;
  assert_int_equal(teex_image_load(dir, NULL, &i1, &err), 0);
  assert_int_equal(teex_image_load(plain, NULL, &i2, &err), 0);
  assert_int_equal(teex_image_load(enc, key, &i3, &err), 0);
  assert_memory_equal(i1->hash, i2->hash, 32);
  assert_memory_equal(i1->hash, i3->hash, 32);
  assert_int_equal(teex_image_load(enc, NULL, &i4, &err), TEEX_EPERM);
  assert_non_null(strstr(err.msg, "a key is needed"));
  key[0] ^= 1;
  assert_int_equal(teex_image_load(enc, key, &i4, &err), TEEX_EAUTH);
  assert_null(i4);
  teex_image_free(i1);
  teex_image_free(i2);
  teex_image_free(i3);
  teex_image_bytes_free(ct, ctlen);
  free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pack_round_trip),
      cmocka_unit_test(test_pack_reproducible),
      cmocka_unit_test(test_pack_errors),
      cmocka_unit_test(test_pack_checker_status_lost),
      cmocka_unit_test(test_pack_symlink_inside),
      cmocka_unit_test(test_parse_refusals),
      cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
