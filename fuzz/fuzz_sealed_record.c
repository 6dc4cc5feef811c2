/* libFuzzer harness: the store's sealed record parser and opener.
 *
 * The first input byte picks a mode. Mode 0 treats the rest as a record
 * read from disk: parse it, compute its digest term, try to open both parts
 * (random data must never authenticate). Mode 1 seals the rest as a key and
 * value, then checks the round trip and that a flipped byte (position from
 * the input) never yields a different key or value. */
#include "store/record.h"
#include "teex/crypto.h"
#include "teex/error.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t rec_key[32] = {1, 2, 3};
static const uint8_t acc_key[32] = {4, 5, 6};
static const uint8_t store_id[32] = {7, 8, 9};
static const uint8_t lkey[STORE_LKEY_LEN] = {10, 11, 12};

static void open_raw(const uint8_t *p, size_t n) {
  struct store_rec r;
  if (store_rec_parse(p, n, &r) != 0)
    return;
  if (r.key_len == 0 || r.key_len > TEEX_STORE_KEY_MAX ||
      r.val_len > TEEX_STORE_VALUE_MAX ||
      store_rec_size(r.key_len, r.val_len) != n)
    abort();
  uint8_t term[STORE_TERM_LEN];
  struct store_mac acc;
  store_mac_init(&acc, acc_key);
  store_rec_term(&acc, lkey, &r, term);
  uint8_t kbuf[TEEX_STORE_KEY_MAX];
  if (store_rec_open_key(rec_key, store_id, lkey, &r, kbuf) == 0)
    abort(); /* a forgery */
  uint8_t *v = malloc(r.val_len ? r.val_len : 1);
  if (v == NULL)
    return;
  if (store_rec_open_val(rec_key, store_id, lkey, &r, v) == 0)
    abort();
  free(v);
}

static void round_trip(const uint8_t *p, size_t n) {
  if (n < 4) /* two flip bytes, a length byte, one key byte */
    return;
  size_t flip = ((size_t)p[0] << 8) | p[1];
  p += 2;
  n -= 2;
  size_t key_len = 1 + p[0] % (n - 1 < 64 ? n - 1 : 64);
  const uint8_t *key = p + 1;
  if (key_len > n - 1)
    key_len = n - 1;
  const uint8_t *val = key + key_len;
  size_t val_len = n - 1 - key_len;
  size_t len = store_rec_size(key_len, val_len);
  uint8_t *rec = malloc(len);
  uint8_t *out = malloc(val_len + key_len + 1);
  if (rec == NULL || out == NULL)
    abort();
  if (store_rec_seal(rec_key, store_id, lkey, 42, key, key_len, val, val_len,
                     rec) != 0)
    abort();
  struct store_rec r;
  if (store_rec_parse(rec, len, &r) != 0 || r.version != 42)
    abort();
  if (store_rec_open_key(rec_key, store_id, lkey, &r, out) != 0 ||
      memcmp(out, key, key_len) != 0)
    abort();
  if (store_rec_open_val(rec_key, store_id, lkey, &r, out) != 0 ||
      (val_len && memcmp(out, val, val_len) != 0))
    abort();
  /* Any single flipped byte is rejected somewhere. */
  rec[flip % len] ^= 0x20;
  if (store_rec_parse(rec, len, &r) == 0 &&
      store_rec_open_key(rec_key, store_id, lkey, &r, out) == 0 &&
      store_rec_open_val(rec_key, store_id, lkey, &r, out) == 0)
    abort();
  free(rec);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    if (teex_crypto_init() != 0)
      abort();
    init = 1;
  }
  if (size < 1)
    return 0;
  if (data[0] & 1)
    round_trip(data + 1, size - 1);
  else
    open_raw(data + 1, size - 1);
  return 0;
}
