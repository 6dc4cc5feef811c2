/* Ethereum scalar types shared by the eth module: 256-bit unsigned integers
 * held as 32 big-endian bytes (the ABI word and the RLP quantity both read
 * them that way), with the few operations fee arithmetic needs. No I/O, no
 * allocation. */
#ifndef TEEX_ETH_TYPES_H
#define TEEX_ETH_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* A 256-bit unsigned integer, big-endian. */
typedef uint8_t teex_u256[32];

void teex_u256_from_u64(teex_u256 out, uint64_t v);
/* 0, or TEEX_ETOOBIG when v does not fit 64 bits. */
int teex_u256_to_u64(const teex_u256 v, uint64_t *out);
/* -1, 0 or 1. */
int teex_u256_cmp(const teex_u256 a, const teex_u256 b);
int teex_u256_is_zero(const teex_u256 v);
/* out = a + b; TEEX_ETOOBIG on overflow (out is then unspecified). */
int teex_u256_add(teex_u256 out, const teex_u256 a, const teex_u256 b);
/* out = a - b; TEEX_EINVAL when b > a. */
int teex_u256_sub(teex_u256 out, const teex_u256 a, const teex_u256 b);
/* out = a * m; TEEX_ETOOBIG on overflow. */
int teex_u256_mul_u64(teex_u256 out, const teex_u256 a, uint64_t m);
/* Parses a decimal string ("1000") or a 0x-prefixed hex quantity ("0x3e8").
 * TEEX_EINVAL on anything else (empty, sign, spaces), TEEX_ETOOBIG past
 * 2^256-1. */
int teex_u256_parse(const char *s, teex_u256 out);
/* Decimal form, NUL-terminated; out must hold 79 bytes. */
#define TEEX_U256_DEC_MAX 79
void teex_u256_format_dec(const teex_u256 v, char out[79]);
/* JSON-RPC quantity form ("0x0", "0x3e8"): out must hold 67 bytes. */
void teex_u256_format_hex(const teex_u256 v, char out[67]);
/* Parses a JSON-RPC quantity strictly: "0x" then 1..64 hex digits, no
 * leading zero except "0x0". TEEX_EFORMAT otherwise. */
int teex_u256_parse_quantity(const char *s, teex_u256 out);
int teex_quantity_parse_u64(const char *s, uint64_t *out);

/* Formats wei as ether with up to 18 decimals ("1.5"); out holds 81 bytes. */
void teex_u256_format_ether(const teex_u256 wei, char out[81]);

#endif
