/* The Solidity contract ABI: types, values, encoding and decoding of call
 * data, return data, event logs and revert data.
 *
 * Types are parsed from their canonical strings ("uint256", "address[]",
 * "(address,uint256)[3]", "transfer(address,uint256)") or built in code.
 * Values are a tree mirroring the type. The decoder treats its input as
 * hostile: every offset and length is checked against the data, and the
 * total it may allocate for one decode is bounded (TEEX_ABI_DECODE_BUDGET),
 * so pointer tricks that alias one large tail many times cannot blow up
 * memory. Nothing here does I/O. */
#ifndef TEEX_ABI_H
#define TEEX_ABI_H

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/eth_types.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TEEX_ABI_MAX_DEPTH 16              /* type nesting */
#define TEEX_ABI_MAX_FIELDS 256            /* tuple members */
#define TEEX_ABI_MAX_FIXED_LEN 65536       /* T[k]: k at most this */
#define TEEX_ABI_MAX_NAME 128              /* function / event name */
#define TEEX_ABI_DECODE_BUDGET (16u << 20) /* bytes one decode may allocate */

enum teex_abi_kind {
  TEEX_ABI_UINT,        /* uint<bits> */
  TEEX_ABI_INT,         /* int<bits>, two's complement */
  TEEX_ABI_ADDRESS,     /* 20 bytes */
  TEEX_ABI_BOOL,        /* 0 or 1 */
  TEEX_ABI_FIXED_BYTES, /* bytes<size>, 1..32 */
  TEEX_ABI_BYTES,       /* dynamic bytes */
  TEEX_ABI_STRING,      /* dynamic UTF-8 string */
  TEEX_ABI_ARRAY,       /* T[] */
  TEEX_ABI_FIXED_ARRAY, /* T[k] */
  TEEX_ABI_TUPLE        /* (T1,...,Tn) */
};

struct teex_abi_type {
  enum teex_abi_kind kind;
  unsigned bits;                 /* UINT/INT: 8..256; FIXED_BYTES: size */
  size_t len;                    /* FIXED_ARRAY: k */
  struct teex_abi_type *elem;    /* ARRAY / FIXED_ARRAY: owned */
  struct teex_abi_type **fields; /* TUPLE: owned array of n_fields */
  size_t n_fields;
};

/* Parses one canonical type ("uint256", "bytes32[]", "(uint8,string)[2]";
 * "uint"/"int" mean 256 bits; a tuple may be written "tuple(...)" too).
 * *out is owned by the caller (teex_abi_type_free). TEEX_EFORMAT with a
 * message in err on a bad string. */
int teex_abi_type_parse(const char *s, struct teex_abi_type **out,
                        struct teex_err *err);
/* Parses "name(type,...)" into the name and a tuple of the parameters.
 * name must hold TEEX_ABI_MAX_NAME bytes. */
int teex_abi_sig_parse(const char *sig, char *name,
                       struct teex_abi_type **params, struct teex_err *err);
/* The canonical string of a type ("(address,uint256)[]"). TEEX_ETOOBIG
 * when it does not fit cap. */
int teex_abi_type_format(const struct teex_abi_type *t, char *out, size_t cap);
void teex_abi_type_free(struct teex_abi_type *t);
/* 1 when the type is dynamic (its encoding is referenced by an offset). */
int teex_abi_type_is_dynamic(const struct teex_abi_type *t);

/* ---- values ----
 * One node per type node. Scalars (UINT, INT, ADDRESS, BOOL, FIXED_BYTES)
 * are held as their 32-byte ABI word: right-aligned big-endian numbers
 * (INT sign-extended), addresses right-aligned, bytes<N> left-aligned.
 * BYTES/STRING own `data`; arrays and tuples own `items`. */
struct teex_abi_value {
  enum teex_abi_kind kind;
  uint8_t word[32];
  uint8_t *data; /* BYTES/STRING: owned, NUL-terminated (not counted) */
  size_t len;
  struct teex_abi_value *items; /* ARRAY/FIXED_ARRAY/TUPLE: owned */
  size_t n_items;
};

/* Setters: they fill v (whose previous content must be empty or cleared;
 * nothing is freed). Those that allocate return 0 or TEEX_ENOMEM. */
void teex_abi_uint(struct teex_abi_value *v, const teex_u256 x);
void teex_abi_uint64(struct teex_abi_value *v, uint64_t x);
void teex_abi_int64(struct teex_abi_value *v, int64_t x);
void teex_abi_address(struct teex_abi_value *v, const uint8_t addr[20]);
void teex_abi_bool(struct teex_abi_value *v, int b);
/* bytes<n>, n <= 32: p is left-aligned into the word. */
void teex_abi_fixed_bytes(struct teex_abi_value *v, const void *p, size_t n);
int teex_abi_bytes(struct teex_abi_value *v, const void *p, size_t n);
int teex_abi_string(struct teex_abi_value *v, const char *s);
/* Allocates n zeroed items for an array (kind ARRAY or FIXED_ARRAY) or a
 * tuple; fill them in with the setters. */
int teex_abi_tuple(struct teex_abi_value *v, size_t n);
int teex_abi_array(struct teex_abi_value *v, size_t n);
int teex_abi_fixed_array(struct teex_abi_value *v, size_t n);
/* Frees what v owns (recursively) and zeroes it. NULL-safe. */
void teex_abi_value_clear(struct teex_abi_value *v);

/* Getters with range checks: TEEX_ETOOBIG when the value does not fit,
 * TEEX_EINVAL on a kind mismatch. */
int teex_abi_get_u64(const struct teex_abi_value *v, uint64_t *out);
int teex_abi_get_address(const struct teex_abi_value *v, uint8_t addr[20]);

/* ---- encoding ---- */

/* Appends the ABI encoding of v as type t (checking that v matches t: kind,
 * counts, value range of uint<N>/int<N>, bool 0/1, unused bytes zero).
 * TEEX_EINVAL with a message on a mismatch. */
int teex_abi_encode(const struct teex_abi_type *t,
                    const struct teex_abi_value *v, struct teex_buf *out,
                    struct teex_err *err);
/* 4-byte function selector: keccak256(canonical signature)[0..4). The
 * signature is re-formatted canonically, so "f(uint)" = "f(uint256)". */
int teex_abi_selector(const char *sig, uint8_t sel[4], struct teex_err *err);
/* Call data for sig with args (a TUPLE value of the parameters): selector ||
 * encode(params, args). */
int teex_abi_encode_call(const char *sig, const struct teex_abi_value *args,
                         struct teex_buf *out, struct teex_err *err);

/* ---- decoding ---- */

/* Decodes data[0..len) as type t into *out (cleared first; on error it is
 * left empty). Strict: offsets must lie inside the data, bools are 0/1,
 * unused high bytes of uint<N>/address and low bytes of bytes<N> and the
 * padding of bytes/string must be zero, int<N> must be sign-extended.
 * Trailing bytes after the encoding are allowed (Solidity allows them).
 * TEEX_EFORMAT / TEEX_ETRUNC / TEEX_ETOOBIG with a message. */
int teex_abi_decode(const struct teex_abi_type *t, const uint8_t *data,
                    size_t len, struct teex_abi_value *out,
                    struct teex_err *err);

/* ---- events ---- */

/* topic0 of an event: keccak256 of its canonical signature. */
int teex_abi_event_topic(const char *sig, uint8_t topic[32],
                         struct teex_err *err);
/* Decodes a log of event sig ("Transfer(address,address,uint256)") whose
 * parameters marked in indexed_mask (bit i = parameter i, at most 32) are
 * topics. Checks topic0 and the topic count. Indexed dynamic parameters
 * (string, bytes, arrays, tuples) are only hashes on chain: they decode as a
 * bytes32 word holding the topic. *out is a TUPLE of all parameters. */
int teex_abi_log_decode(const char *sig, uint32_t indexed_mask,
                        const uint8_t (*topics)[32], size_t n_topics,
                        const uint8_t *data, size_t len,
                        struct teex_abi_value *out, struct teex_err *err);

/* ---- revert data ---- */

enum teex_abi_revert_kind {
  TEEX_REVERT_NONE,   /* empty revert data (require without message) */
  TEEX_REVERT_ERROR,  /* Error(string) */
  TEEX_REVERT_PANIC,  /* Panic(uint256) */
  TEEX_REVERT_CUSTOM, /* a custom error (matched or not) */
  TEEX_REVERT_INVALID /* undecodable */
};

/* Describes revert data for a human: "reverted: insufficient escrow",
 * "panic 0x11: arithmetic overflow or underflow", "custom error
 * NotRegistered(0xabc...)" when one of custom_sigs (NULL-terminated list of
 * error signatures, may be NULL) matches the selector, else "custom error
 * 0x12345678 (data 0x...)". Always writes a NUL-terminated message (cut to
 * cap). Returns the kind. */
enum teex_abi_revert_kind
teex_abi_revert_describe(const uint8_t *data, size_t len,
                         const char *const *custom_sigs, char *msg, size_t cap);

/* Writes a human form of v as type t ("(0xAbC..,42,\"hi\",[1,2])"),
 * NUL-terminated, cut at cap. */
void teex_abi_value_format(const struct teex_abi_type *t,
                           const struct teex_abi_value *v, char *out,
                           size_t cap);

/* ---- JSON bridge (CLI arguments, test oracles) ---- */

/* Builds a value of type t from JSON: uint/int as a JSON integer or a
 * decimal / 0x-hex string (a leading '-' for int); address as 0x-hex;
 * bool as true/false; bytes/bytesN as 0x-hex (bytesN exactly N bytes);
 * string as a string; arrays and tuples as JSON arrays. *out is owned by
 * the caller. TEEX_EINVAL with a message naming the problem. */
int teex_abi_value_from_json(const struct teex_abi_type *t, json_t *j,
                             struct teex_abi_value *out, struct teex_err *err);
/* The reverse: numbers as decimal strings, bytes as 0x-hex, addresses in
 * EIP-55 form. New reference, NULL on allocation failure. */
json_t *teex_abi_value_to_json(const struct teex_abi_type *t,
                               const struct teex_abi_value *v);
#endif
