/* CIDv1 in binary and in multibase base32 text, strictly parsed, and the
 * varints and hash they are made of. */
#include "ipfs/ipfs_internal.h"

#include "teex/crypto.h"

#include <string.h>

void ipfs_sha256(const void *p, size_t n, uint8_t out[32]) {
  teex_sha256(p, n, out);
}

size_t ipfs_varint_put(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

size_t ipfs_varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

int ipfs_varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
  uint64_t r = 0;
  size_t i = *pos;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (i >= len)
      return TEEX_ETRUNC;
    uint8_t b = p[i++];
    /* The tenth byte may carry only the 64th bit. */
    if (shift == 63 && b > 1)
      return TEEX_EFORMAT;
    r |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      /* Minimal: a final zero byte after the first adds nothing. */
      if (b == 0 && shift > 0)
        return TEEX_EFORMAT;
      *pos = i;
      *v = r;
      return 0;
    }
  }
  return TEEX_EFORMAT;
}

void teex_cid_of_block(uint8_t codec, const void *data, size_t len,
                       struct teex_cid *out) {
  out->codec = codec;
  ipfs_sha256(data, len, out->digest);
}

void teex_cid_to_bytes(const struct teex_cid *c,
                       uint8_t out[TEEX_CID_BIN_LEN]) {
  out[0] = 0x01;
  out[1] = c->codec;
  out[2] = TEEX_MH_SHA2_256;
  out[3] = 32;
  memcpy(out + 4, c->digest, 32);
}

int teex_cid_from_bytes(const uint8_t *p, size_t len, struct teex_cid *out,
                        struct teex_err *err) {
  size_t pos = 0;
  uint64_t version, codec, hash, hlen;
  if (len >= 2 && p[0] == 0x12 && p[1] == 0x20)
    return teex_err_set(err, TEEX_EFORMAT,
                        "CIDv0 (bare sha2-256 multihash) is not supported");
  if (ipfs_varint_get(p, len, &pos, &version) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "CID: bad version varint");
  if (version != 1)
    return teex_err_set(err, TEEX_EFORMAT, "CID: version %llu unsupported",
                        (unsigned long long)version);
  if (ipfs_varint_get(p, len, &pos, &codec) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "CID: bad codec varint");
  if (codec != TEEX_CODEC_RAW && codec != TEEX_CODEC_DAG_PB)
    return teex_err_set(err, TEEX_EFORMAT,
                        "CID: codec 0x%llx unsupported (raw 0x55 and dag-pb "
                        "0x70 only)",
                        (unsigned long long)codec);
  if (ipfs_varint_get(p, len, &pos, &hash) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "CID: bad multihash code");
  if (hash != TEEX_MH_SHA2_256)
    return teex_err_set(err, TEEX_EFORMAT,
                        "CID: hash function 0x%llx unsupported (sha2-256 only)",
                        (unsigned long long)hash);
  if (ipfs_varint_get(p, len, &pos, &hlen) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "CID: bad multihash length");
  if (hlen != 32)
    return teex_err_set(err, TEEX_EFORMAT,
                        "CID: sha2-256 digest length %llu, expected 32",
                        (unsigned long long)hlen);
  if (len - pos < 32)
    return teex_err_set(err, TEEX_EFORMAT, "CID: truncated digest");
  if (len - pos > 32)
    return teex_err_set(err, TEEX_EFORMAT, "CID: %zu trailing bytes",
                        len - pos - 32);
  out->codec = (uint8_t)codec;
  memcpy(out->digest, p + pos, 32);
  return 0;
}

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

void teex_cid_to_string(const struct teex_cid *c, char out[TEEX_CID_STR_SIZE]) {
  uint8_t bin[TEEX_CID_BIN_LEN];
  teex_cid_to_bytes(c, bin);
  size_t o = 0;
  out[o++] = 'b';
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < sizeof bin; i++) {
    acc = (acc << 8) | bin[i];
    bits += 8;
    while (bits >= 5) {
      out[o++] = b32_alphabet[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0)
    out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
  out[o] = '\0';
}

static int b32_value(char ch) {
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a';
  if (ch >= '2' && ch <= '7')
    return ch - '2' + 26;
  return -1;
}

int teex_cid_parse(const char *s, struct teex_cid *out, struct teex_err *err) {
  if (s == NULL || s[0] == '\0')
    return teex_err_set(err, TEEX_EFORMAT, "CID: empty");
  size_t n = strnlen(s, TEEX_CID_STR_LEN + 1);
  if (n == 46 && s[0] == 'Q' && s[1] == 'm')
    return teex_err_set(err, TEEX_EFORMAT,
                        "CIDv0 (\"Qm...\") is not supported; use the CIDv1 "
                        "form (ipfs cid format -v 1 -b base32)");
  if (s[0] != 'b')
    return teex_err_set(err, TEEX_EFORMAT,
                        "CID: multibase '%c' unsupported (base32 'b' only)",
                        (s[0] >= 0x21 && s[0] < 0x7f) ? s[0] : '?');
  if (n != TEEX_CID_STR_LEN)
    return teex_err_set(
        err, TEEX_EFORMAT, "CID: %s length (expected %d characters)",
        n > TEEX_CID_STR_LEN ? "excess" : "short", TEEX_CID_STR_LEN);
  uint8_t bin[TEEX_CID_BIN_LEN];
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 1; i < n; i++) {
    int v = b32_value(s[i]);
    if (v < 0)
      return teex_err_set(err, TEEX_EFORMAT,
                          "CID: character %zu is not lower-case base32", i);
    acc = ((acc << 5) | (uint32_t)v) & 0xffffu;
    bits += 5;
    if (bits >= 8) {
      if (o >= sizeof bin)
        return teex_err_set(err, TEEX_EFORMAT, "CID: too long");
      bin[o++] = (uint8_t)(acc >> (bits - 8));
      bits -= 8;
    }
  }
  /* 58 characters carry 290 bits: 288 of data and 2 that must be zero, so
   * that each CID has exactly one text form. */
  if (o != sizeof bin || (acc & ((1u << bits) - 1)) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "CID: non-canonical base32");
  return teex_cid_from_bytes(bin, sizeof bin, out, err);
}

int teex_cid_equal(const struct teex_cid *a, const struct teex_cid *b) {
  return a->codec == b->codec && memcmp(a->digest, b->digest, 32) == 0;
}

int teex_cid_verify(const struct teex_cid *cid, const void *data, size_t len,
                    struct teex_err *err) {
  uint8_t d[32];
  ipfs_sha256(data, len, d);
  if (memcmp(d, cid->digest, 32) != 0) {
    char s[TEEX_CID_STR_SIZE];
    teex_cid_to_string(cid, s);
    return teex_err_set(err, TEEX_EAUTH,
                        "block %s: content does not match its CID (%zu bytes "
                        "received; corrupted or tampered)",
                        s, len);
  }
  return 0;
}
