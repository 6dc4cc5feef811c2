/* Internal helpers shared by the eth module's sources. */
#ifndef TEEX_ETH_INTERNAL_H
#define TEEX_ETH_INTERNAL_H

#include "teex/abi.h"

#include <stdio.h>

/* A bounded string builder: never overflows, records truncation. */
struct teex_sb {
  char *out;
  size_t cap, len;
  int over;
};
void teex_sb_init(struct teex_sb *b, char *out, size_t cap);
void teex_sb_put(struct teex_sb *b, const char *s, size_t n);
void teex_sb_str(struct teex_sb *b, const char *s);

size_t teex_abi_head_size(const struct teex_abi_type *t);
/* Static encoded size, saturating at SIZE_MAX. */
size_t teex_abi_static_size_checked(const struct teex_abi_type *t);
/* Re-formats "name(types)" canonically into out; optionally returns the
 * parameter tuple (owned by the caller). */
int teex_abi_canonical_sig(const char *sig, char *out, size_t cap,
                           struct teex_abi_type **params_out,
                           struct teex_err *err);
#define TEEX_ABI_SIG_MAX 1024
/* A string value of n bytes (may contain NUL). */
int teex_abi_string_n(struct teex_abi_value *v, const char *s, size_t n);

#endif
