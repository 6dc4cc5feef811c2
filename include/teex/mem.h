/* Memory for secrets.
 *
 * Secrets (private keys, sealing keys, image and data keys) live in locked
 * memory from teex_secret_alloc: guard pages around it, never swapped,
 * excluded from core dumps, wiped on free. Each live secret is registered so
 * that the logger can refuse to print it (see include/teex/log.h). */
#ifndef TEEX_MEM_H
#define TEEX_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Overwrites n bytes with zeros in a way the compiler cannot elide. */
void teex_wipe(void *p, size_t n);

/* Constant-time equality of two n-byte regions: 1 if equal, 0 otherwise. */
int teex_ct_equal(const void *a, const void *b, size_t n);

/* Allocates n bytes of locked, guarded, zeroed memory and registers it as a
 * secret. Returns NULL on failure (or when n is 0). Free with
 * teex_secret_free. Owned by the caller. */
void *teex_secret_alloc(size_t n);

/* Wipes, unregisters and frees memory from teex_secret_alloc. NULL-safe. */
void teex_secret_free(void *p);

/* Registers a secret held elsewhere (e.g. on the stack) so the logger redacts
 * it; unregister before the memory goes away. Registration is best effort
 * (a fixed table); returns 0 or TEEX_ENOMEM when the table is full. Regions
 * shorter than 8 bytes are ignored. */
int teex_secret_register(const void *p, size_t n);
void teex_secret_unregister(const void *p);

/* Calls fn for every registered secret region; used by the logger. Holds the
 * registry lock while iterating: fn must not register or unregister. */
void teex_secret_foreach(void (*fn)(const uint8_t *p, size_t n, void *arg),
                         void *arg);

/* 1 when [p, p+n) overlaps a registered secret region. */
int teex_secret_overlaps(const void *p, size_t n);

#endif
