/* The sealed local store on LMDB (see include/teex/store.h and
 * docs/internals/store.md).
 *
 * Layout: one LMDB environment in the store directory with two named
 * databases. "meta" holds "header" (magic, format, store id, MAC) and
 * "digest" (sealed: write sequence, record count, accumulator). "rec" maps
 * namespace-hash || key-hash to a sealed record (record.h). A flock on
 * teex.lock makes one process the owner. */
#include "teex/store.h"

#include "store/record.h"
#include "teex/crypto.h"
#include "teex/log.h"
#include "teex/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_MAGIC "TEEXSTOR"
#define HDR_MAGIC_LEN 8
#define HDR_FORMAT 1
#define HDR_BODY_LEN (HDR_MAGIC_LEN + 4 + TEEX_STORE_ID_LEN)
#define HDR_LEN (HDR_BODY_LEN + 32)
#define DIGEST_FORMAT 1
#define DIGEST_PLAIN_LEN (4 + 8 + 8 + STORE_TERM_LEN)
#define DIGEST_SEALED_LEN (DIGEST_PLAIN_LEN + TEEX_XAEAD_OVERHEAD)
#define STORE_PATH_MAX 3072
/* Total bytes of keys one scan may collect. */
#define STORE_SCAN_KEY_BYTES_MAX (64u * 1024 * 1024)

static const char digest_label[] = "teex-store-digest-v1";

/* Subkeys derived from the root sealing key, salted with the store id
 * (in locked memory). The three HMAC keys are kept as precomputed pads. */
struct store_keys {
  uint8_t hdr[32];        /* MAC of the header: tells a wrong root key */
  uint8_t rec[32];        /* seals records */
  uint8_t digest[32];     /* seals the digest */
  struct store_mac keyid; /* HMAC of the key hash */
  struct store_mac ns;    /* HMAC of the namespace hash */
  struct store_mac acc;   /* HMAC of the records' digest terms */
};

/* The state the sealed digest commits to. */
struct store_digest {
  uint64_t seq;
  uint64_t count;
  uint8_t acc[STORE_TERM_LEN];
};

struct teex_store {
  MDB_env *env;
  MDB_dbi meta_dbi;
  MDB_dbi rec_dbi;
  int lock_fd;
  unsigned flags;
  int integrity;
  uint8_t store_id[TEEX_STORE_ID_LEN];
  struct store_keys *k;   /* locked memory */
  pthread_mutex_t wlock;  /* held for the life of a write transaction */
  pthread_mutex_t state;  /* guards dg */
  struct store_digest dg; /* the last committed digest */
};

struct teex_store_txn {
  struct teex_store *s;
  MDB_txn *txn;
  int write;
  int dirty;
  int failed; /* code of the error that poisoned a write transaction */
  struct store_digest dg;
};

struct iter_ent {
  size_t off; /* into keys */
  size_t len;
  uint8_t lkey[STORE_LKEY_LEN];
};

struct teex_store_iter {
  struct teex_store_txn *txn;
  struct iter_ent *ents;
  size_t n, cap, pos;
  struct teex_buf keys; /* the collected keys, back to back (secret) */
  struct teex_buf val;  /* the current value (secret) */
};

/* ---- helpers ---- */

/* Maps an LMDB (or errno) code to a teex error with context. */
static int mdb_fail(struct teex_err *err, int rc, const char *what) {
  switch (rc) {
  case MDB_MAP_FULL:
    return teex_err_set(err, TEEX_ENOSPC,
                        "%s: store full (its map size is reached; open it "
                        "with a larger map_size)",
                        what);
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return teex_err_set(err, TEEX_ENOSPC, "%s: disk full: %s", what,
                        mdb_strerror(rc));
  case MDB_NOTFOUND:
    return teex_err_set(err, TEEX_ENOTFOUND, "%s: not found", what);
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH:
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INCOMPATIBLE:
  case MDB_BAD_VALSIZE:
    return teex_err_set(err, TEEX_EFORMAT,
                        "%s: not a teex store or corrupted: %s", what,
                        mdb_strerror(rc));
  case MDB_READERS_FULL:
  case EAGAIN:
  case EBUSY:
    return teex_err_set(err, TEEX_EBUSY, "%s: %s", what, mdb_strerror(rc));
  case EACCES:
  case EPERM:
  case EROFS:
    return teex_err_set(err, TEEX_EPERM, "%s: %s", what, mdb_strerror(rc));
  case ENOMEM:
    return teex_err_set(err, TEEX_ENOMEM, "%s: out of memory", what);
  default:
    return teex_err_set(err, TEEX_EIO, "%s: %s", what, mdb_strerror(rc));
  }
}

/* First 8 bytes of an LMDB key in hex: names a record in messages without
 * revealing its key. */
static void lkey_tag(const uint8_t *lkey, size_t n, char out[17]) {
  teex_hex_encode(lkey + STORE_NS_HASH_LEN, n >= 24 ? 8 : 0, out);
}

static size_t namespace_len(const uint8_t *key, size_t key_len) {
  if (key_len == 0)
    return 0;
  const uint8_t *sep = memchr(key, TEEX_STORE_NS_SEP, key_len);
  return sep == NULL ? 0 : (size_t)(sep - key) + 1;
}

static void ns_hash(const struct teex_store *s, const uint8_t *ns,
                    size_t ns_len, uint8_t out[STORE_NS_HASH_LEN]) {
  uint8_t h[32];
  store_mac(&s->k->ns, ns_len ? ns : (const uint8_t *)"", ns_len, h);
  memcpy(out, h, STORE_NS_HASH_LEN);
  teex_wipe(h, sizeof h);
}

static void lkey_of(const struct teex_store *s, const uint8_t *key,
                    size_t key_len, uint8_t lkey[STORE_LKEY_LEN]) {
  ns_hash(s, key, namespace_len(key, key_len), lkey);
  store_mac(&s->k->keyid, key, key_len, lkey + STORE_NS_HASH_LEN);
}

static void xor32(uint8_t *a, const uint8_t *b) {
  for (size_t i = 0; i < STORE_TERM_LEN; i++)
    a[i] ^= b[i];
}

static int derive_keys(const uint8_t root[32], const uint8_t id[32],
                       struct store_keys *k) {
  static const char *const info[] = {
      "teex store v1 header",    "teex store v1 record",
      "teex store v1 digest",    "teex store v1 key id",
      "teex store v1 namespace", "teex store v1 accumulator",
  };
  uint8_t mk[32];
  uint8_t *out[] = {k->hdr, k->rec, k->digest, mk, mk, mk};
  struct store_mac *macs[] = {NULL, NULL, NULL, &k->keyid, &k->ns, &k->acc};
  int rc = 0;
  for (size_t i = 0; i < sizeof out / sizeof out[0] && rc == 0; i++) {
    if (teex_hkdf_sha256(id, TEEX_STORE_ID_LEN, root, 32,
                         (const uint8_t *)info[i], strlen(info[i]), out[i],
                         32) != 0)
      rc = TEEX_ECRYPTO;
    else if (macs[i] != NULL)
      store_mac_init(macs[i], mk);
  }
  teex_wipe(mk, sizeof mk);
  return rc;
}

static void header_build(const struct teex_store *s, uint8_t out[HDR_LEN]) {
  memcpy(out, HDR_MAGIC, HDR_MAGIC_LEN);
  store_put_u32(out + HDR_MAGIC_LEN, HDR_FORMAT);
  memcpy(out + HDR_MAGIC_LEN + 4, s->store_id, TEEX_STORE_ID_LEN);
  teex_hmac_sha256(s->k->hdr, 32, out, HDR_BODY_LEN, out + HDR_BODY_LEN);
}

static size_t digest_ad(const struct teex_store *s, uint8_t *ad) {
  size_t n = sizeof digest_label - 1;
  memcpy(ad, digest_label, n);
  memcpy(ad + n, s->store_id, TEEX_STORE_ID_LEN);
  return n + TEEX_STORE_ID_LEN;
}

static void digest_encode(const struct store_digest *d,
                          uint8_t out[DIGEST_PLAIN_LEN]) {
  store_put_u32(out, DIGEST_FORMAT);
  store_put_u64(out + 4, d->seq);
  store_put_u64(out + 12, d->count);
  memcpy(out + 20, d->acc, STORE_TERM_LEN);
}

static int digest_write(struct teex_store *s, MDB_txn *txn,
                        const struct store_digest *d, struct teex_err *err) {
  uint8_t plain[DIGEST_PLAIN_LEN];
  uint8_t ad[64];
  digest_encode(d, plain);
  MDB_val k = {6, (void *)"digest"};
  MDB_val v = {DIGEST_SEALED_LEN, NULL};
  int rc = mdb_put(txn, s->meta_dbi, &k, &v, MDB_RESERVE);
  if (rc != 0) {
    teex_wipe(plain, sizeof plain);
    return mdb_fail(err, rc, "write store digest");
  }
  rc = teex_xaead_seal(s->k->digest, ad, digest_ad(s, ad), plain, sizeof plain,
                       v.mv_data);
  teex_wipe(plain, sizeof plain);
  if (rc != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "seal store digest");
  return 0;
}

static int digest_read(struct teex_store *s, MDB_txn *txn,
                       struct store_digest *d, struct teex_err *err) {
  MDB_val k = {6, (void *)"digest"};
  MDB_val v;
  int rc = mdb_get(txn, s->meta_dbi, &k, &v);
  if (rc == MDB_NOTFOUND)
    return teex_err_set(err, TEEX_EAUTH, "store digest missing (tampered)");
  if (rc != 0)
    return mdb_fail(err, rc, "read store digest");
  if (v.mv_size != DIGEST_SEALED_LEN)
    return teex_err_set(err, TEEX_EAUTH,
                        "store digest has the wrong size (tampered)");
  uint8_t plain[DIGEST_PLAIN_LEN];
  uint8_t ad[64];
  if (teex_xaead_open(s->k->digest, ad, digest_ad(s, ad), v.mv_data, v.mv_size,
                      plain) != 0)
    return teex_err_set(err, TEEX_EAUTH,
                        "store digest fails authentication (tampered or "
                        "from another store)");
  if (store_get_u32(plain) != DIGEST_FORMAT) {
    teex_wipe(plain, sizeof plain);
    return teex_err_set(err, TEEX_EVERSION, "store digest format %u",
                        (unsigned)store_get_u32(plain));
  }
  d->seq = store_get_u64(plain + 4);
  d->count = store_get_u64(plain + 12);
  memcpy(d->acc, plain + 20, STORE_TERM_LEN);
  teex_wipe(plain, sizeof plain);
  return 0;
}

static int digest_equal(const struct store_digest *a,
                        const struct store_digest *b) {
  uint8_t ea[DIGEST_PLAIN_LEN], eb[DIGEST_PLAIN_LEN];
  digest_encode(a, ea);
  digest_encode(b, eb);
  int eq = teex_ct_equal(ea, eb, sizeof ea);
  teex_wipe(ea, sizeof ea);
  teex_wipe(eb, sizeof eb);
  return eq;
}

static uint64_t store_seq(struct teex_store *s) {
  pthread_mutex_lock(&s->state);
  uint64_t seq = s->dg.seq;
  pthread_mutex_unlock(&s->state);
  return seq;
}

/* ---- open: verification ---- */

/* Fully authenticates every record (the slow path, run only when the
 * digest does not match) to tell a tampered record from a rollback. */
static int diagnose(struct teex_store *s, MDB_txn *txn,
                    const struct store_digest *want, uint64_t count,
                    struct teex_err *err) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, s->rec_dbi, &cur);
  if (rc != 0)
    return mdb_fail(err, rc, "verify store");
  uint8_t keybuf[TEEX_STORE_KEY_MAX];
  MDB_val k, v;
  int result = 0;
  int newer = 0;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    struct store_rec r;
    char tag[17];
    lkey_tag(k.mv_data, k.mv_size, tag);
    if (k.mv_size != STORE_LKEY_LEN ||
        store_rec_parse(v.mv_data, v.mv_size, &r) != 0) {
      result = teex_err_set(err, TEEX_EAUTH, "record %s is malformed", tag);
      break;
    }
    uint8_t *val = malloc(r.val_len ? r.val_len : 1);
    if (val == NULL) {
      result = teex_err_set(err, TEEX_ENOMEM, "verify store");
      break;
    }
    int bad =
        store_rec_open_key(s->k->rec, s->store_id, k.mv_data, &r, keybuf) !=
            0 ||
        store_rec_open_val(s->k->rec, s->store_id, k.mv_data, &r, val) != 0;
    teex_wipe(val, r.val_len);
    free(val);
    if (bad) {
      result = teex_err_set(err, TEEX_EAUTH,
                            "record %s fails authentication (tampered, "
                            "moved to another key, or from another store)",
                            tag);
      break;
    }
    if (r.version > want->seq)
      newer = 1;
  }
  teex_wipe(keybuf, sizeof keybuf);
  mdb_cursor_close(cur);
  if (result != 0)
    return result;
  if (rc != MDB_NOTFOUND)
    return mdb_fail(err, rc, "verify store");
  if (newer)
    return teex_err_set(err, TEEX_EROLLBACK,
                        "a record is newer than the store's sealed digest: "
                        "the digest was rolled back");
  if (count != want->count)
    return teex_err_set(err, TEEX_EROLLBACK,
                        "store holds %llu records but its sealed digest says "
                        "%llu: a record was deleted or added",
                        (unsigned long long)count,
                        (unsigned long long)want->count);
  return teex_err_set(err, TEEX_EROLLBACK,
                      "a record was replaced with an older version of itself "
                      "(the store digest does not match)");
}

/* Checks every record against the sealed digest: parse, version, and the
 * XOR of the records' keyed terms. */
static int verify_records(struct teex_store *s, MDB_txn *txn,
                          const struct store_digest *want,
                          struct teex_err *err) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, s->rec_dbi, &cur);
  if (rc != 0)
    return mdb_fail(err, rc, "verify store");
  uint8_t acc[STORE_TERM_LEN] = {0};
  uint64_t count = 0;
  MDB_val k, v;
  int result = 0;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    struct store_rec r;
    char tag[17];
    lkey_tag(k.mv_data, k.mv_size, tag);
    if (k.mv_size != STORE_LKEY_LEN) {
      result = teex_err_set(err, TEEX_EAUTH,
                            "a record has a malformed key (tampered)");
      break;
    }
    if (store_rec_parse(v.mv_data, v.mv_size, &r) != 0) {
      result = teex_err_set(err, TEEX_EAUTH,
                            "record %s is malformed (tampered)", tag);
      break;
    }
    uint8_t term[STORE_TERM_LEN];
    store_rec_term(&s->k->acc, k.mv_data, &r, term);
    xor32(acc, term);
    count++;
  }
  mdb_cursor_close(cur);
  if (result == 0 && rc != MDB_NOTFOUND)
    result = mdb_fail(err, rc, "verify store");
  if (result == 0 &&
      (count != want->count || !teex_ct_equal(acc, want->acc, STORE_TERM_LEN)))
    result = diagnose(s, txn, want, count, err);
  teex_wipe(acc, sizeof acc);
  return result;
}

/* ---- open ---- */

static int store_create(struct teex_store *s, const uint8_t root[32],
                        struct teex_err *err) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (rc != 0)
    return mdb_fail(err, rc, "create store");
  if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta_dbi)) != 0 ||
      (rc = mdb_dbi_open(txn, "rec", MDB_CREATE, &s->rec_dbi)) != 0) {
    mdb_txn_abort(txn);
    return mdb_fail(err, rc, "create store");
  }
  teex_random(s->store_id, sizeof s->store_id);
  if (derive_keys(root, s->store_id, s->k) != 0) {
    mdb_txn_abort(txn);
    return teex_err_set(err, TEEX_ECRYPTO, "derive store keys");
  }
  uint8_t hdr[HDR_LEN];
  header_build(s, hdr);
  MDB_val k = {6, (void *)"header"};
  MDB_val v = {HDR_LEN, hdr};
  memset(&s->dg, 0, sizeof s->dg);
  if ((rc = mdb_put(txn, s->meta_dbi, &k, &v, 0)) != 0) {
    mdb_txn_abort(txn);
    return mdb_fail(err, rc, "create store");
  }
  if ((rc = digest_write(s, txn, &s->dg, err)) != 0) {
    mdb_txn_abort(txn);
    return rc;
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    return mdb_fail(err, rc, "create store");
  return 0;
}

static int store_load(struct teex_store *s, const uint8_t root[32],
                      struct teex_err *err) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc != 0)
    return mdb_fail(err, rc, "open store");
  if ((rc = mdb_dbi_open(txn, "meta", 0, &s->meta_dbi)) != 0 ||
      (rc = mdb_dbi_open(txn, "rec", 0, &s->rec_dbi)) != 0) {
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
      return teex_err_set(err, TEEX_EFORMAT, "not a teex store");
    return mdb_fail(err, rc, "open store");
  }
  MDB_val k = {6, (void *)"header"};
  MDB_val v;
  rc = mdb_get(txn, s->meta_dbi, &k, &v);
  if (rc != 0 || v.mv_size != HDR_LEN ||
      memcmp(v.mv_data, HDR_MAGIC, HDR_MAGIC_LEN) != 0) {
    mdb_txn_abort(txn);
    return teex_err_set(err, TEEX_EFORMAT,
                        "not a teex store (no valid header)");
  }
  uint8_t hdr[HDR_LEN];
  memcpy(hdr, v.mv_data, HDR_LEN);
  if (store_get_u32(hdr + HDR_MAGIC_LEN) != HDR_FORMAT) {
    mdb_txn_abort(txn);
    return teex_err_set(err, TEEX_EVERSION, "store format %u unsupported",
                        (unsigned)store_get_u32(hdr + HDR_MAGIC_LEN));
  }
  memcpy(s->store_id, hdr + HDR_MAGIC_LEN + 4, TEEX_STORE_ID_LEN);
  if (derive_keys(root, s->store_id, s->k) != 0) {
    mdb_txn_abort(txn);
    return teex_err_set(err, TEEX_ECRYPTO, "derive store keys");
  }
  uint8_t want[HDR_LEN];
  header_build(s, want);
  if (!teex_ct_equal(want, hdr, HDR_LEN)) {
    mdb_txn_abort(txn);
    return teex_err_set(err, TEEX_EAUTH,
                        "wrong root sealing key for this store (or its "
                        "header was tampered with)");
  }
  struct store_digest d;
  rc = digest_read(s, txn, &d, err);
  if (rc == 0) {
    s->dg = d;
    rc = verify_records(s, txn, &d, err);
  } else {
    /* Salvage: no digest to check record versions against. */
    memset(&s->dg, 0, sizeof s->dg);
    s->dg.seq = UINT64_MAX;
  }
  if (rc != 0 && (rc == TEEX_EAUTH || rc == TEEX_EROLLBACK) &&
      (s->flags & TEEX_STORE_SALVAGE)) {
    s->integrity = rc;
    TEEX_WARN("store", "opened for salvage; verification failed", "code=%s",
              teex_err_name(rc));
    rc = 0;
  }
  /* Committing a read transaction keeps the database handles it opened. */
  int crc = mdb_txn_commit(txn);
  if (rc == 0 && crc != 0)
    rc = mdb_fail(err, crc, "open store");
  return rc;
}

int teex_store_open(const char *path, const uint8_t root_key[32],
                    unsigned flags, struct teex_store **out,
                    struct teex_err *err) {
  return teex_store_open_opts(path, root_key, flags, NULL, out, err);
}

int teex_store_open_opts(const char *path, const uint8_t root_key[32],
                         unsigned flags, const struct teex_store_opts *opts,
                         struct teex_store **out, struct teex_err *err) {
  if (out != NULL)
    *out = NULL;
  if (path == NULL || root_key == NULL || out == NULL ||
      (flags & ~(TEEX_STORE_CREATE | TEEX_STORE_RDONLY | TEEX_STORE_SALVAGE)) !=
          0)
    return teex_err_set(err, TEEX_EINVAL, "open store: bad arguments");
  if (strlen(path) == 0 || strlen(path) > STORE_PATH_MAX)
    return teex_err_set(err, TEEX_EINVAL, "open store: bad path length");
  if (teex_crypto_init() != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "open store: crypto init");
  if (flags & TEEX_STORE_SALVAGE)
    flags = (flags | TEEX_STORE_RDONLY) & ~TEEX_STORE_CREATE;
  int rdonly = (flags & TEEX_STORE_RDONLY) != 0;
  uint64_t map_size = TEEX_STORE_DEFAULT_MAP_SIZE;
  if (opts != NULL && opts->map_size != 0)
    map_size = opts->map_size;

  int rc;
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno != ENOENT || !(flags & TEEX_STORE_CREATE))
      return teex_err_set(err, errno == ENOENT ? TEEX_ENOTFOUND : TEEX_EIO,
                          "open store %s: %s", path, strerror(errno));
    if (mkdir(path, 0700) != 0)
      return teex_err_set(err, errno == ENOSPC ? TEEX_ENOSPC : TEEX_EIO,
                          "create store directory %s: %s", path,
                          strerror(errno));
  } else if (!S_ISDIR(st.st_mode)) {
    return teex_err_set(err, TEEX_EINVAL, "open store %s: not a directory",
                        path);
  }

  struct teex_store *s = calloc(1, sizeof *s);
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "open store");
  s->flags = flags;
  s->lock_fd = -1;
  s->k = teex_secret_alloc(sizeof *s->k);
  if (s->k == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "open store: locked memory");
    goto fail_after_alloc;
  }
  pthread_mutex_init(&s->wlock, NULL);
  pthread_mutex_init(&s->state, NULL);

  char file[STORE_PATH_MAX + 32];
  snprintf(file, sizeof file, "%s/teex.lock", path);
  s->lock_fd =
      open(file, (rdonly ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0600);
  if (s->lock_fd < 0 && rdonly && errno == ENOENT)
    s->lock_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->lock_fd < 0) {
    rc = teex_err_set(err, errno == EACCES ? TEEX_EPERM : TEEX_EIO,
                      "open store %s: lock file: %s", path, strerror(errno));
    goto fail_after_keys;
  }
  if (flock(s->lock_fd, (rdonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    rc = teex_err_set(err, TEEX_EBUSY,
                      "open store %s: in use by another process or handle",
                      path);
    goto fail_after_keys;
  }

  snprintf(file, sizeof file, "%s/data.mdb", path);
  int exists = access(file, F_OK) == 0;
  if (!exists && !(flags & TEEX_STORE_CREATE)) {
    rc = teex_err_set(err, TEEX_ENOTFOUND, "open store %s: no store there",
                      path);
    goto fail_after_keys;
  }
  if (!exists && rdonly) {
    rc = teex_err_set(err, TEEX_ENOTFOUND, "open store %s: no store there",
                      path);
    goto fail_after_keys;
  }

  if ((rc = mdb_env_create(&s->env)) != 0) {
    rc = mdb_fail(err, rc, "open store");
    goto fail_after_keys;
  }
  if ((rc = mdb_env_set_mapsize(s->env, (size_t)map_size)) != 0 ||
      (rc = mdb_env_set_maxdbs(s->env, 4)) != 0) {
    rc = mdb_fail(err, rc, "open store");
    goto fail_after_env;
  }
  rc =
      mdb_env_open(s->env, path,
                   MDB_NOTLS | MDB_NORDAHEAD | (rdonly ? MDB_RDONLY : 0), 0600);
  if (rc != 0) {
    char what[STORE_PATH_MAX + 32];
    snprintf(what, sizeof what, "open store %s", path);
    rc = mdb_fail(err, rc, what);
    goto fail_after_env;
  }

  int fresh = !exists;
  if (exists && (flags & TEEX_STORE_CREATE)) {
    /* A data file left empty by a crash during creation. */
    MDB_stat ms;
    MDB_txn *t;
    MDB_dbi main_dbi;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) == 0) {
      if (mdb_dbi_open(t, NULL, 0, &main_dbi) == 0 &&
          mdb_stat(t, main_dbi, &ms) == 0 && ms.ms_entries == 0)
        fresh = 1;
      mdb_txn_abort(t);
    }
  }
  rc = fresh ? store_create(s, root_key, err) : store_load(s, root_key, err);
  if (rc != 0) {
    teex_err_wrap(err, 0, "open store %s", path);
    goto fail_after_env;
  }
  *out = s;
  return 0;

fail_after_env:
  mdb_env_close(s->env);
fail_after_keys:
  if (s->lock_fd >= 0)
    close(s->lock_fd);
  pthread_mutex_destroy(&s->wlock);
  pthread_mutex_destroy(&s->state);
  teex_secret_free(s->k);
fail_after_alloc:
  teex_wipe(s, sizeof *s);
  free(s);
  return rc;
}

void teex_store_close(struct teex_store *s) {
  if (s == NULL)
    return;
  mdb_env_close(s->env);
  close(s->lock_fd);
  pthread_mutex_destroy(&s->wlock);
  pthread_mutex_destroy(&s->state);
  teex_secret_free(s->k);
  teex_wipe(s, sizeof *s);
  free(s);
}

int teex_store_integrity(const struct teex_store *s) {
  return s == NULL ? TEEX_EINVAL : s->integrity;
}

int teex_store_info(struct teex_store *s, struct teex_store_info *info,
                    struct teex_err *err) {
  if (s == NULL || info == NULL)
    return teex_err_set(err, TEEX_EINVAL, "store info: bad arguments");
  MDB_envinfo ei;
  int rc = mdb_env_info(s->env, &ei);
  if (rc != 0)
    return mdb_fail(err, rc, "store info");
  pthread_mutex_lock(&s->state);
  info->records = s->dg.count;
  info->seq = s->dg.seq;
  pthread_mutex_unlock(&s->state);
  info->map_size = ei.me_mapsize;
  memcpy(info->store_id, s->store_id, TEEX_STORE_ID_LEN);
  return 0;
}

/* ---- transactions ---- */

int teex_store_txn_begin(struct teex_store *s, unsigned flags,
                         struct teex_store_txn **out, struct teex_err *err) {
  if (out != NULL)
    *out = NULL;
  if (s == NULL || out == NULL || (flags & ~TEEX_STORE_TXN_RDONLY) != 0)
    return teex_err_set(err, TEEX_EINVAL, "begin transaction: bad arguments");
  int write = !(flags & TEEX_STORE_TXN_RDONLY);
  if (write && (s->flags & TEEX_STORE_RDONLY))
    return teex_err_set(err, TEEX_EPERM,
                        "begin transaction: store opened read-only");
  struct teex_store_txn *t = calloc(1, sizeof *t);
  if (t == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "begin transaction");
  t->s = s;
  t->write = write;
  if (write)
    pthread_mutex_lock(&s->wlock);
  int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
  if (rc != 0) {
    rc = mdb_fail(err, rc, "begin transaction");
    goto fail;
  }
  if (write) {
    if ((rc = digest_read(s, t->txn, &t->dg, err)) != 0) {
      teex_err_wrap(err, 0, "begin transaction");
      goto fail_after_txn;
    }
    pthread_mutex_lock(&s->state);
    int same = digest_equal(&t->dg, &s->dg);
    pthread_mutex_unlock(&s->state);
    if (!same) {
      rc = teex_err_set(err, TEEX_EROLLBACK,
                        "begin transaction: the store digest changed on disk "
                        "while the store was open");
      goto fail_after_txn;
    }
  }
  *out = t;
  return 0;

fail_after_txn:
  mdb_txn_abort(t->txn);
fail:
  if (write)
    pthread_mutex_unlock(&s->wlock);
  teex_wipe(t, sizeof *t);
  free(t);
  return rc;
}

static void txn_free(struct teex_store_txn *t) {
  if (t->write)
    pthread_mutex_unlock(&t->s->wlock);
  teex_wipe(t, sizeof *t);
  free(t);
}

void teex_store_txn_abort(struct teex_store_txn *t) {
  if (t == NULL)
    return;
  mdb_txn_abort(t->txn);
  txn_free(t);
}

int teex_store_txn_commit(struct teex_store_txn *t, struct teex_err *err) {
  if (t == NULL)
    return teex_err_set(err, TEEX_EINVAL, "commit: no transaction");
  int rc;
  if (t->failed != 0) {
    rc = teex_err_set(err, t->failed,
                      "commit: an earlier operation of this transaction "
                      "failed (%s); nothing was written",
                      teex_strerror(t->failed));
    teex_store_txn_abort(t);
    return rc;
  }
  if (t->write && t->dirty &&
      (rc = digest_write(t->s, t->txn, &t->dg, err)) != 0) {
    teex_err_wrap(err, 0, "commit");
    teex_store_txn_abort(t);
    return rc;
  }
  rc = mdb_txn_commit(t->txn);
  if (rc != 0) {
    rc = mdb_fail(err, rc, "commit");
    txn_free(t);
    return rc;
  }
  if (t->write && t->dirty) {
    pthread_mutex_lock(&t->s->state);
    t->s->dg = t->dg;
    pthread_mutex_unlock(&t->s->state);
  }
  txn_free(t);
  return 0;
}

static int check_key(const void *key, size_t key_len, struct teex_err *err,
                     const char *what) {
  if (key == NULL || key_len == 0 || key_len > TEEX_STORE_KEY_MAX)
    return teex_err_set(err, TEEX_EINVAL, "%s: key must be 1..%d bytes", what,
                        TEEX_STORE_KEY_MAX);
  return 0;
}

/* Poisons a write transaction: LMDB's own transaction is unusable after a
 * failed write, so commit must refuse. */
static int txn_poison(struct teex_store_txn *t, int rc) {
  t->failed = rc;
  return rc;
}

/* Looks a record up and parses it. 1 found, 0 absent, or an error. */
static int rec_lookup(struct teex_store_txn *t,
                      const uint8_t lkey[STORE_LKEY_LEN], struct store_rec *r,
                      struct teex_err *err, const char *what) {
  MDB_val k = {STORE_LKEY_LEN, (void *)lkey};
  MDB_val v;
  int rc = mdb_get(t->txn, t->s->rec_dbi, &k, &v);
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc != 0)
    return mdb_fail(err, rc, what);
  if (store_rec_parse(v.mv_data, v.mv_size, r) != 0) {
    char tag[17];
    lkey_tag(lkey, STORE_LKEY_LEN, tag);
    return teex_err_set(err, TEEX_EAUTH,
                        "%s: record %s is malformed "
                        "(tampered)",
                        what, tag);
  }
  return 1;
}

/* Decrypts a parsed record's value into out after checking its version and
 * (when key is given) that it holds this key. */
static int rec_read(struct teex_store_txn *t,
                    const uint8_t lkey[STORE_LKEY_LEN],
                    const struct store_rec *r, const uint8_t *key,
                    size_t key_len, struct teex_buf *out, struct teex_err *err,
                    const char *what) {
  struct teex_store *s = t->s;
  char tag[17];
  lkey_tag(lkey, STORE_LKEY_LEN, tag);
  if (key != NULL) {
    uint8_t kbuf[TEEX_STORE_KEY_MAX];
    int rc = store_rec_open_key(s->k->rec, s->store_id, lkey, r, kbuf);
    int same =
        rc == 0 && r->key_len == key_len && teex_ct_equal(kbuf, key, key_len);
    teex_wipe(kbuf, r->key_len);
    if (!same)
      return teex_err_set(err, TEEX_EAUTH,
                          "%s: record %s fails authentication (tampered, "
                          "moved, or from another store)",
                          what, tag);
  }
  teex_buf_reset(out);
  int rc = teex_buf_reserve(out, r->val_len);
  if (rc != 0)
    return teex_err_set(err, rc,
                        "%s: value of %zu bytes exceeds the "
                        "buffer's limit",
                        what, r->val_len);
  uint8_t empty[1];
  rc = store_rec_open_val(s->k->rec, s->store_id, lkey, r,
                          r->val_len ? out->data : empty);
  if (rc != 0)
    return teex_err_set(err, TEEX_EAUTH,
                        "%s: record %s fails authentication (tampered, "
                        "moved, or from another store)",
                        what, tag);
  out->len = r->val_len;
  /* Authentic, yet written after the digest the store trusts (a write
   * transaction trusts its own, newer, digest). */
  if (r->version > (t->write ? t->dg.seq : store_seq(s))) {
    teex_wipe(out->data, out->len);
    teex_buf_reset(out);
    return teex_err_set(err, TEEX_EROLLBACK,
                        "%s: record %s is newer than the store digest (the "
                        "digest was rolled back)",
                        what, tag);
  }
  return 0;
}

int teex_store_txn_get(struct teex_store_txn *t, const void *key,
                       size_t key_len, struct teex_buf *out,
                       struct teex_err *err) {
  int rc;
  if (t == NULL || out == NULL)
    return teex_err_set(err, TEEX_EINVAL, "get: bad arguments");
  if ((rc = check_key(key, key_len, err, "get")) != 0)
    return rc;
  if (t->failed != 0)
    return teex_err_set(err, TEEX_ESTATE, "get: transaction failed earlier");
  uint8_t lkey[STORE_LKEY_LEN];
  struct store_rec r;
  lkey_of(t->s, key, key_len, lkey);
  rc = rec_lookup(t, lkey, &r, err, "get");
  if (rc == 0)
    return teex_err_set(err, TEEX_ENOTFOUND, "get: no such key");
  if (rc < 0)
    return rc;
  return rec_read(t, lkey, &r, key, key_len, out, err, "get");
}

int teex_store_txn_put(struct teex_store_txn *t, const void *key,
                       size_t key_len, const void *val, size_t val_len,
                       struct teex_err *err) {
  int rc;
  if (t == NULL || (val == NULL && val_len != 0))
    return teex_err_set(err, TEEX_EINVAL, "put: bad arguments");
  if ((rc = check_key(key, key_len, err, "put")) != 0)
    return rc;
  if (val_len > TEEX_STORE_VALUE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "put: value of %zu bytes exceeds the maximum of %u",
                        val_len, TEEX_STORE_VALUE_MAX);
  if (!t->write)
    return teex_err_set(err, TEEX_EPERM, "put: read-only transaction");
  if (t->failed != 0)
    return teex_err_set(err, TEEX_ESTATE, "put: transaction failed earlier");
  struct teex_store *s = t->s;
  uint8_t lkey[STORE_LKEY_LEN];
  lkey_of(s, key, key_len, lkey);
  struct store_rec old;
  uint8_t old_term[STORE_TERM_LEN];
  int have_old = rec_lookup(t, lkey, &old, err, "put");
  if (have_old < 0)
    return have_old;
  if (have_old)
    store_rec_term(&s->k->acc, lkey, &old, old_term);

  uint64_t version = t->dg.seq + 1;
  MDB_val k = {STORE_LKEY_LEN, lkey};
  MDB_val v = {store_rec_size(key_len, val_len), NULL};
  rc = mdb_put(t->txn, s->rec_dbi, &k, &v, MDB_RESERVE);
  if (rc != 0)
    return txn_poison(t, mdb_fail(err, rc, "put"));
  rc = store_rec_seal(s->k->rec, s->store_id, lkey, version, key, key_len, val,
                      val_len, v.mv_data);
  struct store_rec nr;
  if (rc != 0 || store_rec_parse(v.mv_data, v.mv_size, &nr) != 0)
    return txn_poison(t, teex_err_set(err, TEEX_ECRYPTO, "put: seal record"));
  uint8_t term[STORE_TERM_LEN];
  store_rec_term(&s->k->acc, lkey, &nr, term);
  xor32(t->dg.acc, term);
  if (have_old)
    xor32(t->dg.acc, old_term);
  else
    t->dg.count++;
  t->dg.seq = version;
  t->dirty = 1;
  return 0;
}

int teex_store_txn_del(struct teex_store_txn *t, const void *key,
                       size_t key_len, struct teex_err *err) {
  int rc;
  if (t == NULL)
    return teex_err_set(err, TEEX_EINVAL, "del: bad arguments");
  if ((rc = check_key(key, key_len, err, "del")) != 0)
    return rc;
  if (!t->write)
    return teex_err_set(err, TEEX_EPERM, "del: read-only transaction");
  if (t->failed != 0)
    return teex_err_set(err, TEEX_ESTATE, "del: transaction failed earlier");
  struct teex_store *s = t->s;
  uint8_t lkey[STORE_LKEY_LEN];
  lkey_of(s, key, key_len, lkey);
  struct store_rec old;
  rc = rec_lookup(t, lkey, &old, err, "del");
  if (rc == 0)
    return teex_err_set(err, TEEX_ENOTFOUND, "del: no such key");
  if (rc < 0)
    return rc;
  uint8_t term[STORE_TERM_LEN];
  store_rec_term(&s->k->acc, lkey, &old, term);
  MDB_val k = {STORE_LKEY_LEN, lkey};
  rc = mdb_del(t->txn, s->rec_dbi, &k, NULL);
  if (rc != 0)
    return txn_poison(t, mdb_fail(err, rc, "del"));
  xor32(t->dg.acc, term);
  t->dg.count--;
  t->dg.seq++;
  t->dirty = 1;
  return 0;
}

int teex_store_get(struct teex_store *s, const void *key, size_t key_len,
                   struct teex_buf *out, struct teex_err *err) {
  struct teex_store_txn *t;
  int rc = teex_store_txn_begin(s, TEEX_STORE_TXN_RDONLY, &t, err);
  if (rc != 0)
    return rc;
  rc = teex_store_txn_get(t, key, key_len, out, err);
  teex_store_txn_abort(t);
  return rc;
}

int teex_store_put(struct teex_store *s, const void *key, size_t key_len,
                   const void *val, size_t val_len, struct teex_err *err) {
  struct teex_store_txn *t;
  int rc = teex_store_txn_begin(s, 0, &t, err);
  if (rc != 0)
    return rc;
  rc = teex_store_txn_put(t, key, key_len, val, val_len, err);
  if (rc != 0) {
    teex_store_txn_abort(t);
    return rc;
  }
  return teex_store_txn_commit(t, err);
}

int teex_store_del(struct teex_store *s, const void *key, size_t key_len,
                   struct teex_err *err) {
  struct teex_store_txn *t;
  int rc = teex_store_txn_begin(s, 0, &t, err);
  if (rc != 0)
    return rc;
  rc = teex_store_txn_del(t, key, key_len, err);
  if (rc != 0) {
    teex_store_txn_abort(t);
    return rc;
  }
  return teex_store_txn_commit(t, err);
}

/* ---- iteration ---- */

static int iter_cmp(const void *a, const void *b, void *arg) {
  const struct iter_ent *x = a, *y = b;
  const uint8_t *keys = arg;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(keys + x->off, keys + y->off, n);
  if (c != 0)
    return c;
  return (x->len > y->len) - (x->len < y->len);
}

static int iter_add(struct teex_store_iter *it, const uint8_t *key,
                    size_t key_len, const uint8_t *lkey, struct teex_err *err) {
  if (it->n == TEEX_STORE_SCAN_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "scan: more than %u records match",
                        TEEX_STORE_SCAN_MAX);
  if (it->n == it->cap) {
    size_t cap = it->cap ? it->cap * 2 : 16;
    if (cap > TEEX_STORE_SCAN_MAX)
      cap = TEEX_STORE_SCAN_MAX;
    struct iter_ent *e = realloc(it->ents, cap * sizeof *e);
    if (e == NULL)
      return teex_err_set(err, TEEX_ENOMEM, "scan");
    it->ents = e;
    it->cap = cap;
  }
  struct iter_ent *e = &it->ents[it->n];
  e->off = it->keys.len;
  e->len = key_len;
  memcpy(e->lkey, lkey, STORE_LKEY_LEN);
  int rc = teex_buf_append(&it->keys, key, key_len);
  if (rc != 0)
    return teex_err_set(err, rc, "scan: keys exceed %u bytes",
                        STORE_SCAN_KEY_BYTES_MAX);
  it->n++;
  return 0;
}

int teex_store_iter_begin(struct teex_store_txn *t, const void *prefix,
                          size_t prefix_len, struct teex_store_iter **out,
                          struct teex_err *err) {
  if (out != NULL)
    *out = NULL;
  if (t == NULL || out == NULL || (prefix == NULL && prefix_len != 0) ||
      prefix_len > TEEX_STORE_KEY_MAX)
    return teex_err_set(err, TEEX_EINVAL, "scan: bad arguments");
  if (t->failed != 0)
    return teex_err_set(err, TEEX_ESTATE, "scan: transaction failed earlier");
  struct teex_store *s = t->s;
  struct teex_store_iter *it = calloc(1, sizeof *it);
  if (it == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "scan");
  it->txn = t;
  teex_buf_init(&it->keys, STORE_SCAN_KEY_BYTES_MAX, TEEX_BUF_SECRET);
  teex_buf_init(&it->val, TEEX_STORE_VALUE_MAX, TEEX_BUF_SECRET);

  /* A prefix holding the separator names one namespace: read only it. */
  size_t ns_len = namespace_len(prefix, prefix_len);
  uint8_t nsh[STORE_NS_HASH_LEN];
  if (ns_len > 0)
    ns_hash(s, prefix, ns_len, nsh);

  MDB_cursor *cur;
  int rc = 0;
  int mrc = mdb_cursor_open(t->txn, s->rec_dbi, &cur);
  if (mrc != 0) {
    rc = mdb_fail(err, mrc, "scan");
    goto fail;
  }
  MDB_val k = {ns_len > 0 ? STORE_NS_HASH_LEN : 0, nsh}, v;
  uint8_t kbuf[TEEX_STORE_KEY_MAX];
  mrc = ns_len > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                   : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size != STORE_LKEY_LEN) {
      rc = teex_err_set(err, TEEX_EAUTH,
                        "scan: a record has a malformed key (tampered)");
      break;
    }
    if (ns_len > 0 && memcmp(k.mv_data, nsh, STORE_NS_HASH_LEN) != 0)
      break;
    struct store_rec r;
    char tag[17];
    lkey_tag(k.mv_data, k.mv_size, tag);
    if (store_rec_parse(v.mv_data, v.mv_size, &r) != 0) {
      rc = teex_err_set(err, TEEX_EAUTH,
                        "scan: record %s is malformed (tampered)", tag);
      break;
    }
    if (store_rec_open_key(s->k->rec, s->store_id, k.mv_data, &r, kbuf) != 0) {
      rc = teex_err_set(err, TEEX_EAUTH,
                        "scan: record %s fails authentication (tampered, "
                        "moved, or from another store)",
                        tag);
      break;
    }
    if (r.key_len >= prefix_len &&
        (prefix_len == 0 || memcmp(kbuf, prefix, prefix_len) == 0) &&
        (rc = iter_add(it, kbuf, r.key_len, k.mv_data, err)) != 0)
      break;
  }
  teex_wipe(kbuf, sizeof kbuf);
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
    rc = mdb_fail(err, mrc, "scan");
  if (rc != 0)
    goto fail;
  if (it->n > 1)
    qsort_r(it->ents, it->n, sizeof *it->ents, iter_cmp, it->keys.data);
  *out = it;
  return 0;

fail:
  teex_store_iter_free(it);
  return rc;
}

int teex_store_iter_next(struct teex_store_iter *it, const uint8_t **key,
                         size_t *key_len, const uint8_t **val, size_t *val_len,
                         struct teex_err *err) {
  if (it == NULL || key == NULL || key_len == NULL || val == NULL ||
      val_len == NULL)
    return teex_err_set(err, TEEX_EINVAL, "scan: bad arguments");
  while (it->pos < it->n) {
    struct iter_ent *e = &it->ents[it->pos++];
    struct store_rec r;
    int rc = rec_lookup(it->txn, e->lkey, &r, err, "scan");
    if (rc == 0)
      continue; /* deleted in this transaction since begin */
    if (rc < 0)
      return rc;
    rc = rec_read(it->txn, e->lkey, &r, NULL, 0, &it->val, err, "scan");
    if (rc != 0)
      return rc;
    *key = it->keys.data + e->off;
    *key_len = e->len;
    *val = it->val.len ? it->val.data : (const uint8_t *)"";
    *val_len = it->val.len;
    return 1;
  }
  teex_buf_reset(&it->val);
  return 0;
}

void teex_store_iter_free(struct teex_store_iter *it) {
  if (it == NULL)
    return;
  teex_buf_free(&it->keys);
  teex_buf_free(&it->val);
  free(it->ents);
  free(it);
}
