/* 256-bit unsigned arithmetic on big-endian byte arrays. */
#include "teex/eth_types.h"

#include "teex/error.h"

#include <string.h>

void teex_u256_from_u64(teex_u256 out, uint64_t v) {
  memset(out, 0, 24);
  for (int i = 0; i < 8; i++)
    out[31 - i] = (uint8_t)(v >> (8 * i));
}

int teex_u256_to_u64(const teex_u256 v, uint64_t *out) {
  for (int i = 0; i < 24; i++)
    if (v[i])
      return TEEX_ETOOBIG;
  uint64_t r = 0;
  for (int i = 24; i < 32; i++)
    r = (r << 8) | v[i];
  *out = r;
  return 0;
}

int teex_u256_cmp(const teex_u256 a, const teex_u256 b) {
  int c = memcmp(a, b, 32);
  return (c > 0) - (c < 0);
}

int teex_u256_is_zero(const teex_u256 v) {
  for (int i = 0; i < 32; i++)
    if (v[i])
      return 0;
  return 1;
}

int teex_u256_add(teex_u256 out, const teex_u256 a, const teex_u256 b) {
  unsigned carry = 0;
  for (int i = 31; i >= 0; i--) {
    unsigned s = (unsigned)a[i] + b[i] + carry;
    out[i] = (uint8_t)s;
    carry = s >> 8;
  }
  return carry ? TEEX_ETOOBIG : 0;
}

int teex_u256_sub(teex_u256 out, const teex_u256 a, const teex_u256 b) {
  if (teex_u256_cmp(a, b) < 0)
    return TEEX_EINVAL;
  int borrow = 0;
  for (int i = 31; i >= 0; i--) {
    int d = (int)a[i] - b[i] - borrow;
    borrow = d < 0;
    out[i] = (uint8_t)(d + (borrow ? 256 : 0));
  }
  return 0;
}

int teex_u256_mul_u64(teex_u256 out, const teex_u256 a, uint64_t m) {
  /* 32-bit limbs so products fit in 64 bits. */
  uint64_t lo = m & 0xffffffffu, hi = m >> 32;
  uint8_t t1[32], t2[32];
  uint64_t carry = 0;
  for (int i = 31; i >= 0; i--) {
    uint64_t p = (uint64_t)a[i] * lo + carry;
    t1[i] = (uint8_t)p;
    carry = p >> 8;
  }
  if (carry)
    return TEEX_ETOOBIG;
  carry = 0;
  for (int i = 31; i >= 0; i--) {
    uint64_t p = (uint64_t)a[i] * hi + carry;
    t2[i] = (uint8_t)p;
    carry = p >> 8;
  }
  if (carry)
    return TEEX_ETOOBIG;
  /* t2 << 32 bits = shift by 4 bytes. */
  for (int i = 0; i < 4; i++)
    if (t2[i])
      return TEEX_ETOOBIG;
  uint8_t sh[32];
  memcpy(sh, t2 + 4, 28);
  memset(sh + 28, 0, 4);
  return teex_u256_add(out, t1, sh);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int parse_hex_digits(const char *s, teex_u256 out) {
  size_t n = strlen(s);
  if (n == 0)
    return TEEX_EINVAL;
  while (n > 1 && *s == '0') {
    s++;
    n--;
  }
  if (n > 64)
    return TEEX_ETOOBIG;
  memset(out, 0, 32);
  for (size_t i = 0; i < n; i++) {
    int d = hexval(s[n - 1 - i]);
    if (d < 0)
      return TEEX_EINVAL;
    out[31 - i / 2] |= (uint8_t)(i % 2 ? d << 4 : d);
  }
  return 0;
}

int teex_u256_parse(const char *s, teex_u256 out) {
  if (!s || !*s)
    return TEEX_EINVAL;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    return parse_hex_digits(s + 2, out);
  teex_u256 acc, d;
  memset(acc, 0, 32);
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return TEEX_EINVAL;
    if (teex_u256_mul_u64(acc, acc, 10) != 0)
      return TEEX_ETOOBIG;
    teex_u256_from_u64(d, (uint64_t)(*p - '0'));
    if (teex_u256_add(acc, acc, d) != 0)
      return TEEX_ETOOBIG;
  }
  memcpy(out, acc, 32);
  return 0;
}

int teex_u256_parse_quantity(const char *s, teex_u256 out) {
  if (!s || s[0] != '0' || s[1] != 'x' || !s[2])
    return TEEX_EFORMAT;
  if (s[2] == '0' && s[3])
    return TEEX_EFORMAT;
  int rc = parse_hex_digits(s + 2, out);
  return rc == TEEX_ETOOBIG ? rc : rc ? TEEX_EFORMAT : 0;
}

int teex_quantity_parse_u64(const char *s, uint64_t *out) {
  teex_u256 v;
  int rc = teex_u256_parse_quantity(s, v);
  if (rc != 0)
    return rc;
  return teex_u256_to_u64(v, out);
}

/* Divides v (in place) by d, returns the remainder. */
static unsigned divmod_small(uint8_t v[32], unsigned d) {
  unsigned rem = 0;
  for (int i = 0; i < 32; i++) {
    unsigned cur = (rem << 8) | v[i];
    v[i] = (uint8_t)(cur / d);
    rem = cur % d;
  }
  return rem;
}

void teex_u256_format_dec(const teex_u256 v, char out[79]) {
  uint8_t t[32];
  char rev[79];
  size_t n = 0;
  memcpy(t, v, 32);
  do {
    rev[n++] = (char)('0' + divmod_small(t, 10));
  } while (!teex_u256_is_zero(t));
  for (size_t i = 0; i < n; i++)
    out[i] = rev[n - 1 - i];
  out[n] = 0;
}

void teex_u256_format_hex(const teex_u256 v, char out[67]) {
  static const char dig[] = "0123456789abcdef";
  size_t o = 2, i = 0;
  out[0] = '0';
  out[1] = 'x';
  while (i < 64 && ((v[i / 2] >> (i % 2 ? 0 : 4)) & 15) == 0)
    i++;
  if (i == 64)
    out[o++] = '0';
  for (; i < 64; i++)
    out[o++] = dig[(v[i / 2] >> (i % 2 ? 0 : 4)) & 15];
  out[o] = 0;
}

void teex_u256_format_ether(const teex_u256 wei, char out[81]) {
  char dec[79];
  teex_u256_format_dec(wei, dec);
  size_t n = strlen(dec), o = 0;
  if (n <= 18) {
    out[o++] = '0';
    out[o++] = '.';
    for (size_t i = n; i < 18; i++)
      out[o++] = '0';
    memcpy(out + o, dec, n);
    o += n;
  } else {
    memcpy(out, dec, n - 18);
    o = n - 18;
    out[o++] = '.';
    memcpy(out + o, dec + n - 18, 18);
    o += 18;
  }
  while (out[o - 1] == '0')
    o--;
  if (out[o - 1] == '.')
    o--;
  out[o] = 0;
}
