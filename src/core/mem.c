/* Locked memory for secrets and the registry the logger checks
 * (see include/teex/mem.h). */
#include "teex/mem.h"

#include "teex/error.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#define SECRET_TABLE_MAX 4096
#define SECRET_MIN_LEN 8

struct secret_region {
  const uint8_t *p;
  size_t n;
};

static struct secret_region secret_table[SECRET_TABLE_MAX];
static size_t secret_count;
static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;

void teex_wipe(void *p, size_t n) {
  if (p != NULL && n > 0)
    sodium_memzero(p, n);
}

int teex_ct_equal(const void *a, const void *b, size_t n) {
  if (n == 0)
    return 1;
  return sodium_memcmp(a, b, n) == 0;
}

static int sodium_ready(void) {
  static int ready = 0;
  if (!ready)
    ready = sodium_init() >= 0;
  return ready;
}

int teex_secret_register(const void *p, size_t n) {
  if (p == NULL || n < SECRET_MIN_LEN)
    return 0;
  int rc = 0;
  pthread_mutex_lock(&secret_lock);
  if (secret_count == SECRET_TABLE_MAX) {
    rc = TEEX_ENOMEM;
  } else {
    secret_table[secret_count].p = p;
    secret_table[secret_count].n = n;
    secret_count++;
  }
  pthread_mutex_unlock(&secret_lock);
  return rc;
}

void teex_secret_unregister(const void *p) {
  pthread_mutex_lock(&secret_lock);
  for (size_t i = 0; i < secret_count; i++) {
    if (secret_table[i].p == p) {
      secret_table[i] = secret_table[secret_count - 1];
      secret_count--;
      break;
    }
  }
  pthread_mutex_unlock(&secret_lock);
}

void teex_secret_foreach(void (*fn)(const uint8_t *p, size_t n, void *arg),
                         void *arg) {
  pthread_mutex_lock(&secret_lock);
  for (size_t i = 0; i < secret_count; i++)
    fn(secret_table[i].p, secret_table[i].n, arg);
  pthread_mutex_unlock(&secret_lock);
}

int teex_secret_overlaps(const void *p, size_t n) {
  const uint8_t *a = p;
  int hit = 0;
  pthread_mutex_lock(&secret_lock);
  for (size_t i = 0; i < secret_count && !hit; i++) {
    const uint8_t *s = secret_table[i].p;
    if (a < s + secret_table[i].n && s < a + n)
      hit = 1;
  }
  pthread_mutex_unlock(&secret_lock);
  return hit;
}

void *teex_secret_alloc(size_t n) {
  if (n == 0 || !sodium_ready())
    return NULL;
  /* sodium_malloc: guard pages, mlock, MADV_DONTDUMP where available. */
  void *p = sodium_malloc(n);
  if (p == NULL)
    return NULL;
  memset(p, 0, n);
  if (teex_secret_register(p, n) != 0) {
    sodium_free(p);
    return NULL;
  }
  return p;
}

void teex_secret_free(void *p) {
  if (p == NULL)
    return;
  teex_secret_unregister(p);
  sodium_free(p); /* wipes before unmapping */
}
