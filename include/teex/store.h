/* The sealed local store: a component's own state on an untrusted disk.
 *
 * A key-value store on LMDB in which every value is sealed with
 * XChaCha20-Poly1305 under a key derived from the caller's 32-byte root
 * sealing key (the TEE's sealing key), keys are stored only as keyed hashes
 * (the real key travels encrypted inside the record), and a sealed digest of
 * the whole store, updated in the same LMDB transaction as every write and
 * checked on open, detects a record that was altered, moved, deleted, added
 * or replaced with an older version of itself.
 *
 * What it cannot detect: the whole store replaced by an older copy of itself
 * (any local store can be rolled back as a unit; TEE-DS's freshness is for
 * that). LMDB trusts its own B-tree pages: a value that was tampered with is
 * always caught, but hostile edits of LMDB's page structure may be reported
 * as corruption by LMDB, or worse. See docs/internals/store.md for the
 * format, the digest scheme, and exactly what leaks (record count and
 * sizes, namespace grouping, write order, access patterns).
 *
 * Threads: a store handle may be shared; each transaction belongs to one
 * thread. Read transactions run concurrently; write transactions are
 * serialised (a thread holding one must not begin another, nor call the
 * one-shot put/del, which would wait for itself). One process owns a store
 * directory at a time (TEEX_EBUSY). */
#ifndef TEEX_STORE_H
#define TEEX_STORE_H

#include "teex/buf.h"
#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_STORE_ROOT_KEY_LEN 32
#define TEEX_STORE_ID_LEN 32
/* Keys are 1..TEEX_STORE_KEY_MAX bytes, values 0..TEEX_STORE_VALUE_MAX. */
#define TEEX_STORE_KEY_MAX 1024
#define TEEX_STORE_VALUE_MAX (64u * 1024 * 1024)
/* A prefix scan collects at most this many keys (TEEX_ETOOBIG past it). */
#define TEEX_STORE_SCAN_MAX (1u << 20)
/* The namespace of a key is its bytes up to and including the first
 * TEEX_STORE_NS_SEP ("svc/keys/a" -> "svc/"); a key without one is in the
 * root namespace. Records of one namespace sit together on disk, so a
 * prefix scan whose prefix contains the separator reads one namespace;
 * any other scan reads the whole store. */
#define TEEX_STORE_NS_SEP '/'
/* Default LMDB map size (the most the store may grow to); address space is
 * reserved, disk is not. */
#define TEEX_STORE_DEFAULT_MAP_SIZE (1ull << 30)

/* teex_store_open flags. */
#define TEEX_STORE_CREATE 1u /* create the store when path holds none */
#define TEEX_STORE_RDONLY 2u /* no write transactions */
/* Open even when verification fails, read-only, so that the records that
 * still authenticate can be recovered; teex_store_integrity() then returns
 * the failure, and each tampered record reads as TEEX_EAUTH. */
#define TEEX_STORE_SALVAGE 4u

struct teex_store;
struct teex_store_txn;
struct teex_store_iter;

struct teex_store_opts {
  uint64_t map_size; /* 0: TEEX_STORE_DEFAULT_MAP_SIZE */
};

struct teex_store_info {
  uint64_t records;  /* number of records */
  uint64_t seq;      /* writes ever committed (the last record version) */
  uint64_t map_size; /* bytes */
  uint8_t store_id[TEEX_STORE_ID_LEN]; /* random, fixed at creation */
};

/* Opens (or with TEEX_STORE_CREATE creates) the store in directory path,
 * sealed under root_key, and verifies it: header, sealed digest, and every
 * record's hash against the digest. The root key is copied into locked
 * memory; the caller may wipe its copy. *out is owned by the caller
 * (teex_store_close). Errors: TEEX_ENOTFOUND (no store and no CREATE),
 * TEEX_EAUTH (wrong root key, or a tampered or foreign record or digest),
 * TEEX_EROLLBACK (a record deleted, added, or replaced with an older
 * version), TEEX_EFORMAT (not a teex store, or LMDB reports corruption),
 * TEEX_EBUSY (open elsewhere), TEEX_ENOSPC, TEEX_EPERM, TEEX_EIO,
 * TEEX_ENOMEM. */
int teex_store_open(const char *path, const uint8_t root_key[32],
                    unsigned flags, struct teex_store **out,
                    struct teex_err *err);
/* The same with options (opts may be NULL). */
int teex_store_open_opts(const char *path, const uint8_t root_key[32],
                         unsigned flags, const struct teex_store_opts *opts,
                         struct teex_store **out, struct teex_err *err);

/* Closes the store and wipes its keys. No transaction may be live. NULL-safe.
 */
void teex_store_close(struct teex_store *s);

/* 0 when the store verified on open, else the code verification failed with
 * (only possible with TEEX_STORE_SALVAGE). */
int teex_store_integrity(const struct teex_store *s);

/* Record count, sequence number, map size and store id. */
int teex_store_info(struct teex_store *s, struct teex_store_info *info,
                    struct teex_err *err);

/* ---- transactions ---- */

#define TEEX_STORE_TXN_RDONLY 1u

/* Begins a transaction (a write transaction unless TEEX_STORE_TXN_RDONLY;
 * write transactions wait for each other). End it with commit or abort.
 * TEEX_EPERM for a write transaction on a read-only store, TEEX_EROLLBACK
 * when the sealed digest on disk changed under the open store. */
int teex_store_txn_begin(struct teex_store *s, unsigned flags,
                         struct teex_store_txn **out, struct teex_err *err);

/* Commits (writing the updated sealed digest in the same LMDB transaction)
 * and frees txn, whether or not it succeeds. After any failed put or del of
 * a write transaction, commit refuses (the error of that call) and aborts.
 * TEEX_ENOSPC when the map or the disk is full: nothing of txn is kept. */
int teex_store_txn_commit(struct teex_store_txn *txn, struct teex_err *err);

/* Discards txn and frees it. NULL-safe. */
void teex_store_txn_abort(struct teex_store_txn *txn);

/* Looks key up and puts its value into out (reset first; out's own maximum
 * bounds the value: TEEX_ETOOBIG). Use a TEEX_BUF_SECRET buffer for secrets.
 * TEEX_ENOTFOUND, TEEX_EAUTH (the record is tampered or foreign),
 * TEEX_EROLLBACK, TEEX_EINVAL (key size). */
int teex_store_txn_get(struct teex_store_txn *txn, const void *key,
                       size_t key_len, struct teex_buf *out,
                       struct teex_err *err);

/* Inserts or replaces key's value. TEEX_EINVAL (key 1..TEEX_STORE_KEY_MAX
 * bytes), TEEX_ETOOBIG (value over TEEX_STORE_VALUE_MAX), TEEX_EPERM (read
 * transaction), TEEX_EAUTH (the record replaced does not parse),
 * TEEX_ENOSPC (map or disk full). */
int teex_store_txn_put(struct teex_store_txn *txn, const void *key,
                       size_t key_len, const void *val, size_t val_len,
                       struct teex_err *err);

/* Deletes key. TEEX_ENOTFOUND when absent; errors as put. */
int teex_store_txn_del(struct teex_store_txn *txn, const void *key,
                       size_t key_len, struct teex_err *err);

/* One-shot helpers: each runs in its own transaction. */
int teex_store_get(struct teex_store *s, const void *key, size_t key_len,
                   struct teex_buf *out, struct teex_err *err);
int teex_store_put(struct teex_store *s, const void *key, size_t key_len,
                   const void *val, size_t val_len, struct teex_err *err);
int teex_store_del(struct teex_store *s, const void *key, size_t key_len,
                   struct teex_err *err);

/* ---- iteration ---- */

/* Starts an iteration, in key order (bytewise, shorter first), over the
 * records of txn whose key starts with prefix (prefix_len 0: all records).
 * The keys are collected and sorted at begin (at most TEEX_STORE_SCAN_MAX:
 * TEEX_ETOOBIG); values are decrypted one at a time by next. Records put or
 * deleted in txn after begin are not seen / are skipped. *out is owned by
 * the caller (teex_store_iter_free, before the transaction ends).
 * TEEX_EAUTH when a record in the range is tampered or foreign. */
int teex_store_iter_begin(struct teex_store_txn *txn, const void *prefix,
                          size_t prefix_len, struct teex_store_iter **out,
                          struct teex_err *err);

/* Next record: 1 and *key, *val (valid until the next call or free; wiped
 * then), 0 at the end, or a negative TEEX_E* code. */
int teex_store_iter_next(struct teex_store_iter *it, const uint8_t **key,
                         size_t *key_len, const uint8_t **val, size_t *val_len,
                         struct teex_err *err);

/* Frees the iterator and wipes what it decrypted. NULL-safe. */
void teex_store_iter_free(struct teex_store_iter *it);

#endif
