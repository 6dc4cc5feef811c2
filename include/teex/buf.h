/* Bounded growable byte buffers.
 *
 * Every buffer has a hard maximum fixed at init: a peer can never make teex
 * allocate without bound. A buffer that held secrets is wiped when reset or
 * freed if it was initialised with TEEX_BUF_SECRET. */
#ifndef TEEX_BUF_H
#define TEEX_BUF_H

#include <stddef.h>
#include <stdint.h>

#define TEEX_BUF_SECRET 1u /* wipe contents on reset/free/realloc */

struct teex_buf {
  uint8_t *data; /* owned; NULL until the first append */
  size_t len;    /* bytes in use */
  size_t cap;    /* bytes allocated */
  size_t max;    /* hard limit on len */
  unsigned flags;
};

/* Initialises an empty buffer that may grow to max bytes. */
void teex_buf_init(struct teex_buf *b, size_t max, unsigned flags);

/* Ensures room for `extra` more bytes. TEEX_ETOOBIG past max, TEEX_ENOMEM. */
int teex_buf_reserve(struct teex_buf *b, size_t extra);

/* Appends n bytes. TEEX_ETOOBIG / TEEX_ENOMEM; on error b is unchanged. */
int teex_buf_append(struct teex_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string (without its NUL). */
int teex_buf_append_str(struct teex_buf *b, const char *s);

/* Appends printf-formatted text (without NUL). */
int teex_buf_printf(struct teex_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends one byte. */
int teex_buf_putc(struct teex_buf *b, uint8_t c);

/* Removes the first n bytes (n <= len). */
void teex_buf_consume(struct teex_buf *b, size_t n);

/* Sets len to 0 (wiping if secret); keeps the allocation. */
void teex_buf_reset(struct teex_buf *b);

/* Frees the storage (wiping if secret). NULL-safe. b can be reused after
 * teex_buf_init. */
void teex_buf_free(struct teex_buf *b);

/* Hands the storage to the caller (who frees it with free()) and resets b.
 * Returns NULL when nothing was ever appended. *len gets the length. The
 * bytes are not NUL-terminated: use *len, never treat them as a C string. */
uint8_t *teex_buf_steal(struct teex_buf *b, size_t *len);

#endif
