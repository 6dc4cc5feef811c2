/* Unit tests of the ipfs module: CIDs against known answers from an
 * independent IPFS implementation, strict parsing, the dag-pb decoder, and
 * the local blockstore (round trips, tampering, missing blocks, lying
 * nodes, pins and GC). The same CIDs are re-checked live against a js-ipfs
 * daemon by test_jsipfs.sh. */
#include "testutil.h"

#include "ipfs/ipfs_internal.h"
#include "teex/ipfs.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test content: AES-128-CTR keystream (key 00..0f, IV 0) — what
 * `openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 0...`
 * prints for zeros, which is how test_jsipfs.sh makes the same files. */
static uint8_t *gen(size_t n) {
  static const uint8_t key[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                  8, 9, 10, 11, 12, 13, 14, 15};
  static const uint8_t iv[16] = {0};
  uint8_t *p = calloc(1, n ? n : 1);
  assert_non_null(p);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int outl = 0;
  assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv), 1);
  size_t done = 0;
  while (done < n) {
    int step = (int)(n - done > (1u << 24) ? (1u << 24) : n - done);
    assert_int_equal(EVP_EncryptUpdate(c, p + done, &outl, p + done, step), 1);
    done += (size_t)step;
  }
  EVP_CIPHER_CTX_free(c);
  return p;
}

/* CIDs that js-ipfs 0.66.1 (an implementation independent of teex) returned
 * for `add?cid-version=1` of gen(size). */
static const struct {
  size_t size;
  const char *cid;
} kat[] = {
    {0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
    {1, "bafkreicjtfcgdvvumoipafgiyutvvbmr56dwi5qk7yttttxch5x34kcxpa"},
    {6, "bafkreiaxknbvrxbn7bwyu43wmkvqsnzx3k2jr53avigqw4bexgu6wyvwnm"},
    {262143, "bafkreigaiqmd2beiz5tz6ru4atd4ugd2ghmdhaohzlqjifgds5qqinknxu"},
    {262144, "bafkreihfrtyci7yjyylirf7kshew3ctictpakg7v2e6atvq4o5dl54hdiq"},
    {262145, "bafybeicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnnan4bq"},
    {3145728, "bafybeig3s3gm55itrv7ssmr5rrr5ozglzy3ekle3co6np3e6ity7nks4ye"},
    /* 174 chunks: one full node; one more byte: a second level. */
    {45613056, "bafybeiawkl7hbms2bjkqdpw7i5nrb6izbddxv7srlwtfjtd2ytfvtt45lm"},
    {45613057, "bafybeiciqcrvmrv5o6kzwsw3s75mnyjp3oxyefkiex2yw5ajp6droqlffi"},
};

static void cid_str(const struct teex_cid *c, char s[TEEX_CID_STR_SIZE]) {
  teex_cid_to_string(c, s);
}

static void test_hello(void **state) {
  (void)state;
  struct teex_cid c;
  char s[TEEX_CID_STR_SIZE];
  assert_int_equal(teex_ipfs_cid_of_buffer("hello\n", 6, &c, NULL), 0);
  cid_str(&c, s);
  /* The CID every IPFS implementation gives "hello\n" as CIDv1. */
  assert_string_equal(
      s, "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  assert_int_equal(c.codec, TEEX_CODEC_RAW);
}

static void test_known_answers(void **state) {
  (void)state;
  size_t max = kat[sizeof kat / sizeof kat[0] - 1].size;
  uint8_t *data = gen(max);
  for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
    struct teex_cid c;
    char s[TEEX_CID_STR_SIZE];
    struct teex_err err;
    assert_int_equal(teex_ipfs_cid_of_buffer(data, kat[i].size, &c, &err), 0);
    cid_str(&c, s);
    if (strcmp(s, kat[i].cid) != 0)
      fail_msg("size %zu: teex %s, js-ipfs %s", kat[i].size, s, kat[i].cid);
    assert_int_equal(c.codec, kat[i].size <= TEEX_IPFS_CHUNK_SIZE
                                  ? TEEX_CODEC_RAW
                                  : TEEX_CODEC_DAG_PB);
  }
  free(data);
}

/* The builder gives the same CID however the input is cut. */
static void test_streaming_pieces(void **state) {
  (void)state;
  const size_t n = 3145728;
  uint8_t *data = gen(n);
  static const size_t steps[] = {1, 7, 4096, 262143, 262144, 262145, 999999};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    struct teex_ipfs_builder *b;
    struct teex_cid c;
    uint64_t size = 0;
    char s[TEEX_CID_STR_SIZE];
    assert_int_equal(teex_ipfs_builder_new(NULL, NULL, &b), 0);
    size_t off = 0;
    /* Step 1 byte only through the first 300 KiB, to keep it quick. */
    while (off < n) {
      size_t step = steps[k] == 1 && off > 300000 ? 65536 : steps[k];
      size_t take = n - off < step ? n - off : step;
      assert_int_equal(teex_ipfs_builder_update(b, data + off, take, NULL), 0);
      off += take;
    }
    assert_int_equal(teex_ipfs_builder_finish(b, &c, &size, NULL), 0);
    teex_ipfs_builder_free(b);
    cid_str(&c, s);
    assert_string_equal(s, kat[6].cid);
    assert_int_equal(size, n);
  }
  free(data);
}

static void test_cid_parse(void **state) {
  (void)state;
  struct teex_cid c, d;
  struct teex_err err;
  char s[TEEX_CID_STR_SIZE];
  for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
    assert_int_equal(teex_cid_parse(kat[i].cid, &c, &err), 0);
    cid_str(&c, s);
    assert_string_equal(s, kat[i].cid);
    uint8_t bin[TEEX_CID_BIN_LEN];
    teex_cid_to_bytes(&c, bin);
    assert_int_equal(teex_cid_from_bytes(bin, sizeof bin, &d, &err), 0);
    assert_true(teex_cid_equal(&c, &d));
  }
  const char *good = kat[5].cid;
  const char *bad[] = {
      "",
      "b",
      "BAFYBEICVFPEH5U5ZDW6BCRNFUBM6VFCHVUIV4FTQBJ4DNTC6VOPNNAN4BQ",
      "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u", /* CIDv0 */
      "zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW",
      "bafybeicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnnan4b",
      "bafybeicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnnan4bqa",
      "bafybeicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnnan4br", /* bits */
      "bafybeicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnnan4b1",
      "bafyreicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnnan4bq", /* cbor */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    teex_err_clear(&err);
    if (teex_cid_parse(bad[i], &c, &err) != TEEX_EFORMAT)
      fail_msg("accepted bad CID \"%s\"", bad[i]);
    assert_true(err.msg[0] != '\0');
  }
  assert_int_equal(teex_cid_parse(bad[3], &c, &err), TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, "CIDv0"));
  assert_int_equal(teex_cid_parse(good, &c, &err), 0);

  /* Binary: wrong hash, wrong length, non-minimal varint, trailing byte. */
  uint8_t bin[TEEX_CID_BIN_LEN + 2];
  teex_cid_to_bytes(&c, bin);
  bin[2] = 0x13; /* sha2-512 */
  assert_int_equal(teex_cid_from_bytes(bin, 36, &d, &err), TEEX_EFORMAT);
  teex_cid_to_bytes(&c, bin);
  bin[3] = 31;
  assert_int_equal(teex_cid_from_bytes(bin, 36, &d, &err), TEEX_EFORMAT);
  teex_cid_to_bytes(&c, bin);
  assert_int_equal(teex_cid_from_bytes(bin, 35, &d, &err), TEEX_EFORMAT);
  bin[36] = 0;
  assert_int_equal(teex_cid_from_bytes(bin, 37, &d, &err), TEEX_EFORMAT);
  static const uint8_t nonminimal[] = {0x81, 0x00, 0x55, 0x12, 0x20};
  memcpy(bin, nonminimal, sizeof nonminimal);
  assert_int_equal(teex_cid_from_bytes(bin, 36, &d, &err), TEEX_EFORMAT);
}

/* ---- the local blockstore ---- */

struct fixture {
  char *dir;
  struct teex_ipfs_backend *b;
};

static int setup_store(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  f->dir = tu_mkdtemp("ipfs");
  assert_int_equal(teex_ipfs_store_open(f->dir, &f->b, NULL), 0);
  *state = f;
  return 0;
}

static int teardown_store(void **state) {
  struct fixture *f = *state;
  teex_ipfs_close(f->b);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void block_path(const struct fixture *f, const struct teex_cid *c,
                       char *out, size_t size) {
  char s[TEEX_CID_STR_SIZE];
  cid_str(c, s);
  snprintf(out, size, "%s/blocks/%s", f->dir, s);
}

static void test_store_roundtrip(void **state) {
  struct fixture *f = *state;
  static const size_t sizes[] = {0, 6, 262144, 262145, 3145728};
  uint8_t *data = gen(3145728);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    struct teex_cid c, want;
    struct teex_buf out;
    struct teex_err err;
    teex_err_clear(&err);
    assert_int_equal(teex_ipfs_add_buffer(f->b, data, sizes[i], &c, &err), 0);
    assert_int_equal(teex_ipfs_cid_of_buffer(data, sizes[i], &want, NULL), 0);
    assert_true(teex_cid_equal(&c, &want));
    assert_int_equal(teex_ipfs_has(f->b, &c, &err), 1);
    assert_int_equal(teex_ipfs_is_pinned(f->b, &c, &err), 1);
    teex_buf_init(&out, 4u << 20, 0);
    if (teex_ipfs_cat_buffer(f->b, &c, &out, &err) != 0)
      fail_msg("cat: %s", err.msg);
    assert_int_equal(out.len, sizes[i]);
    assert_memory_equal(out.data ? out.data : (uint8_t *)"", data, sizes[i]);
    teex_buf_free(&out);
  }
  /* A size limit is enforced before the bytes are written. */
  struct teex_cid c;
  struct teex_buf small;
  struct teex_err err;
  assert_int_equal(teex_ipfs_add_buffer(f->b, data, 3145728, &c, &err), 0);
  teex_buf_init(&small, 1000000, 0);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &c, &small, &err), TEEX_ETOOBIG);
  assert_int_equal(small.len, 0);
  teex_buf_free(&small);
  free(data);
}

static void test_store_tampered_block(void **state) {
  struct fixture *f = *state;
  uint8_t *data = gen(600000); /* three leaves under one node */
  struct teex_cid root, leaf;
  struct teex_err err;
  struct teex_buf out;
  char path[4096];
  assert_int_equal(teex_ipfs_add_buffer(f->b, data, 600000, &root, &err), 0);
  /* Flip one byte of the second leaf on disk. */
  assert_int_equal(teex_ipfs_cid_of_buffer(data + 262144, 262144, &leaf, NULL),
                   0);
  block_path(f, &leaf, path, sizeof path);
  size_t len;
  uint8_t *blk = tu_read_file(path, &len);
  assert_non_null(blk);
  assert_int_equal(len, 262144);
  blk[1000] ^= 1;
  assert_int_equal(tu_write_file(path, blk, len), 0);
  free(blk);
  teex_buf_init(&out, 1u << 20, 0);
  teex_err_clear(&err);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &root, &out, &err), TEEX_EAUTH);
  assert_non_null(strstr(err.msg, "does not match its CID"));
  char s[TEEX_CID_STR_SIZE];
  cid_str(&leaf, s);
  assert_non_null(strstr(err.msg, s));
  /* Pinning needs the whole DAG intact. */
  assert_int_equal(teex_ipfs_pin(f->b, &root, &err), TEEX_EAUTH);

  /* A tampered root (a single raw block) is refused the same way. */
  struct teex_cid hello;
  assert_int_equal(teex_ipfs_add_buffer(f->b, "hello\n", 6, &hello, &err), 0);
  block_path(f, &hello, path, sizeof path);
  assert_int_equal(tu_write_file(path, "hellO\n", 6), 0);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &hello, &out, &err), TEEX_EAUTH);
  assert_int_equal(out.len, 0); /* not one byte of it came out */

  /* A missing block is "not found", not a crash or a short file. */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &hello, &out, &err),
                   TEEX_ENOTFOUND);
  assert_int_equal(teex_ipfs_has(f->b, &hello, &err), 0);
  teex_buf_free(&out);
  free(data);
}

/* Stores bytes as a dag-pb block under their true CID, as a hostile peer
 * could. */
static void put_node(struct fixture *f, const uint8_t *p, size_t n,
                     struct teex_cid *c) {
  char path[4096];
  teex_cid_of_block(TEEX_CODEC_DAG_PB, p, n, c);
  block_path(f, c, path, sizeof path);
  assert_int_equal(tu_write_file(path, p, n), 0);
}

static size_t link_to(uint8_t *o, const struct teex_cid *c, uint8_t tsize) {
  size_t n = 0;
  o[n++] = 0x12;
  o[n++] = 2 + 36 + 2 + 2;
  o[n++] = 0x0a;
  o[n++] = 36;
  teex_cid_to_bytes(c, o + n);
  n += 36;
  o[n++] = 0x12;
  o[n++] = 0;
  o[n++] = 0x18;
  o[n++] = tsize;
  return n;
}

static void test_store_lying_nodes(void **state) {
  struct fixture *f = *state;
  struct teex_cid hello, node;
  struct teex_err err;
  struct teex_buf out;
  uint8_t blk[256];
  size_t n;
  teex_buf_init(&out, 1u << 20, 0);
  assert_int_equal(teex_ipfs_add_buffer(f->b, "hello\n", 6, &hello, &err), 0);

  /* A valid two-link node (hello twice) reads back as "hello\nhello\n". */
  n = link_to(blk, &hello, 6);
  n += link_to(blk + n, &hello, 6);
  static const uint8_t data_ok[] = {0x0a, 8,    0x08, 2,    0x18,
                                    12,   0x20, 6,    0x20, 6};
  memcpy(blk + n, data_ok, sizeof data_ok);
  put_node(f, blk, n + sizeof data_ok, &node);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &node, &out, &err), 0);
  assert_int_equal(out.len, 12);
  assert_memory_equal(out.data, "hello\nhello\n", 12);

  /* blocksizes that lie about a child: refused. */
  static const uint8_t data_lie[] = {0x0a, 8,    0x08, 2,    0x18,
                                     14,   0x20, 7,    0x20, 7};
  n = link_to(blk, &hello, 6);
  n += link_to(blk + n, &hello, 6);
  memcpy(blk + n, data_lie, sizeof data_lie);
  put_node(f, blk, n + sizeof data_lie, &node);
  teex_err_clear(&err);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &node, &out, &err), TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, "parent says"));

  /* filesize that disagrees with its parts: refused before any fetch. */
  static const uint8_t data_sum[] = {0x0a, 8,    0x08, 2,    0x18,
                                     13,   0x20, 6,    0x20, 6};
  n = link_to(blk, &hello, 6);
  n += link_to(blk + n, &hello, 6);
  memcpy(blk + n, data_sum, sizeof data_sum);
  put_node(f, blk, n + sizeof data_sum, &node);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &node, &out, &err), TEEX_EFORMAT);

  /* A directory is not a file. */
  static const uint8_t dir[] = {0x0a, 2, 0x08, 1};
  put_node(f, dir, sizeof dir, &node);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &node, &out, &err),
                   TEEX_EUNSUPPORTED);

  /* A node that links to itself cannot exist (its CID would be its own
   * hash); a deep chain is cut at TEEX_IPFS_MAX_DEPTH. */
  struct teex_cid child = hello;
  uint8_t sz = 6;
  for (int depth = 0; depth < (int)TEEX_IPFS_MAX_DEPTH + 2; depth++) {
    n = link_to(blk, &child, sz);
    uint8_t d[] = {0x0a, 6, 0x08, 2, 0x18, 6, 0x20, 6};
    memcpy(blk + n, d, sizeof d);
    put_node(f, blk, n + sizeof d, &child);
  }
  teex_err_clear(&err);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &child, &out, &err),
                   TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, "deeper"));
  teex_buf_free(&out);
}

static void test_store_pins_gc(void **state) {
  struct fixture *f = *state;
  uint8_t *data = gen(600000);
  struct teex_cid keep, drop;
  struct teex_err err;
  size_t removed = 99;
  teex_err_clear(&err);
  assert_int_equal(teex_ipfs_add_buffer(f->b, data, 600000, &keep, &err), 0);
  assert_int_equal(teex_ipfs_add_buffer(f->b, "drop me\n", 8, &drop, &err), 0);
  assert_int_equal(teex_ipfs_unpin(f->b, &drop, &err), 0);
  assert_int_equal(teex_ipfs_is_pinned(f->b, &drop, &err), 0);
  assert_int_equal(teex_ipfs_unpin(f->b, &drop, &err), TEEX_ENOTFOUND);
  assert_int_equal(teex_ipfs_store_gc(f->b, &removed, &err), 0);
  assert_int_equal(removed, 1);
  assert_int_equal(teex_ipfs_has(f->b, &drop, &err), 0);
  assert_int_equal(teex_ipfs_has(f->b, &keep, &err), 1);
  /* Every block of the pinned file survived. */
  struct teex_buf out;
  teex_buf_init(&out, 1u << 20, 0);
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &keep, &out, &err), 0);
  assert_int_equal(out.len, 600000);
  assert_memory_equal(out.data, data, 600000);
  /* Re-pinning something absent fails; unpinned, GC takes all of it. */
  assert_int_equal(teex_ipfs_pin(f->b, &drop, &err), TEEX_ENOTFOUND);
  assert_int_equal(teex_ipfs_unpin(f->b, &keep, &err), 0);
  assert_int_equal(teex_ipfs_store_gc(f->b, &removed, &err), 0);
  assert_int_equal(removed, 4); /* three leaves and the root */
  assert_int_equal(teex_ipfs_cat_buffer(f->b, &keep, &out, &err),
                   TEEX_ENOTFOUND);
  teex_buf_free(&out);
  free(data);
}

/* ---- the dag-pb decoder ---- */

static void test_dagpb_decode(void **state) {
  (void)state;
  struct teex_dagpb_node *node = malloc(sizeof *node);
  struct teex_err err;
  struct teex_cid hello;
  uint8_t blk[256];
  size_t n;
  assert_int_equal(teex_ipfs_cid_of_buffer("hello\n", 6, &hello, NULL), 0);
  n = link_to(blk, &hello, 6);
  static const uint8_t d[] = {0x0a, 6, 0x08, 2, 0x18, 6, 0x20, 6};
  memcpy(blk + n, d, sizeof d);
  assert_int_equal(teex_dagpb_decode(blk, n + sizeof d, node, &err), 0);
  assert_int_equal(node->n_links, 1);
  assert_true(teex_cid_equal(&node->links[0].cid, &hello));
  assert_int_equal(node->links[0].tsize, 6);
  assert_int_equal(node->filesize, 6);
  assert_int_equal(node->n_blocksizes, 1);
  assert_int_equal(node->unixfs_type, TEEX_UNIXFS_FILE);

  /* Data before Links: not canonical. */
  uint8_t swapped[256];
  memcpy(swapped, d, sizeof d);
  memcpy(swapped + sizeof d, blk, n);
  assert_int_equal(teex_dagpb_decode(swapped, n + sizeof d, node, &err),
                   TEEX_EFORMAT);
  /* A length that runs past the end. */
  assert_int_equal(teex_dagpb_decode(blk, n + sizeof d - 1, node, &err),
                   TEEX_EFORMAT);
  /* An unknown top-level field. */
  static const uint8_t unknown[] = {0x1a, 0};
  assert_int_equal(teex_dagpb_decode(unknown, sizeof unknown, node, &err),
                   TEEX_EFORMAT);
  /* No UnixFS Data at all. */
  assert_int_equal(teex_dagpb_decode(blk, n, node, &err), TEEX_EFORMAT);
  /* UnixFS without Type. */
  static const uint8_t notype[] = {0x0a, 2, 0x18, 6};
  assert_int_equal(teex_dagpb_decode(notype, sizeof notype, node, &err),
                   TEEX_EFORMAT);
  /* A link without Hash. */
  static const uint8_t nohash[] = {0x12, 2, 0x18, 6, 0x0a, 2, 0x08, 2};
  assert_int_equal(teex_dagpb_decode(nohash, sizeof nohash, node, &err),
                   TEEX_EFORMAT);
  free(node);
}

/* ---- the Kubo RPC answers ---- */

static void test_kubo_answers(void **state) {
  (void)state;
  struct teex_cid c;
  struct teex_err err;
  uint64_t size = 0;
  char s[TEEX_CID_STR_SIZE];
#define P(str, sz)                                                             \
  ipfs_kubo_parse_add((const uint8_t *)(str), strlen(str), &c, sz, &err)
  /* Kubo: Size is a string. */
  assert_int_equal(P("{\"Name\":\"f\",\"Hash\":"
                     "\"bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5"
                     "v6am\",\"Size\":\"6\"}\n",
                     &size),
                   0);
  assert_int_equal(size, 6);
  cid_str(&c, s);
  assert_string_equal(
      s, "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  /* js-ipfs: Size is a number; progress lines before it have no Hash. */
  assert_int_equal(P("{\"Bytes\":262144}\n{\"Name\":\"f\",\"Hash\":"
                     "\"bafybeicvfpeh5u5zdw6bcrnfubm6vfchvuiv4ftqbj4dntc6vopnna"
                     "n4bq\",\"Size\":262249,\"Mode\":\"0644\"}",
                     &size),
                   0);
  assert_int_equal(size, 262249);
  /* Refused: an error line, no Hash, not JSON, a bad Size, a CIDv0. */
  teex_err_clear(&err);
  assert_int_equal(
      P("{\"Message\":\"disk\\nfull\",\"Code\":0,\"Type\":\"error\"}\n", NULL),
      TEEX_EREMOTE);
  assert_non_null(
      strstr(err.msg, "disk?full")); /* control characters replaced */
  assert_int_equal(P("{\"Bytes\":262144}\n", NULL), TEEX_EPROTO);
  assert_int_equal(P("<html>", NULL), TEEX_EPROTO);
  assert_int_equal(P("", NULL), TEEX_EPROTO);
  assert_int_equal(P("{\"Hash\":"
                     "\"bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5"
                     "v6am\",\"Size\":-1}",
                     NULL),
                   TEEX_EPROTO);
  assert_int_equal(P("{\"Hash\":"
                     "\"bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5"
                     "v6am\",\"Size\":\"6x\"}",
                     NULL),
                   TEEX_EPROTO);
  assert_int_equal(
      P("{\"Hash\":\"QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u\"}", NULL),
      TEEX_EFORMAT);
#undef P

  /* API URLs: http(s) only, no query, no spaces. */
  struct teex_ipfs_backend *b = NULL;
  assert_int_equal(teex_ipfs_kubo_open("127.0.0.1:5001", &b, &err),
                   TEEX_EINVAL);
  assert_int_equal(teex_ipfs_kubo_open("file:///etc/passwd", &b, &err),
                   TEEX_EINVAL);
  assert_int_equal(teex_ipfs_kubo_open("http://h/x?y=1", &b, &err),
                   TEEX_EINVAL);
  assert_int_equal(teex_ipfs_kubo_open("http://h /", &b, &err), TEEX_EINVAL);
  assert_int_equal(teex_ipfs_kubo_open("http://127.0.0.1:5001/", &b, &err), 0);
  teex_ipfs_close(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hello),
      cmocka_unit_test(test_known_answers),
      cmocka_unit_test(test_streaming_pieces),
      cmocka_unit_test(test_cid_parse),
      cmocka_unit_test(test_dagpb_decode),
      cmocka_unit_test(test_kubo_answers),
      cmocka_unit_test_setup_teardown(test_store_roundtrip, setup_store,
                                      teardown_store),
      cmocka_unit_test_setup_teardown(test_store_tampered_block, setup_store,
                                      teardown_store),
      cmocka_unit_test_setup_teardown(test_store_lying_nodes, setup_store,
                                      teardown_store),
      cmocka_unit_test_setup_teardown(test_store_pins_gc, setup_store,
                                      teardown_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
