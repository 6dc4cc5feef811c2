/* Keccak-256 with Ethereum's padding, on nettle's public Keccak-f[1600]
 * permutation (no Debian library ships Keccak-256 itself; nettle's SHA-3
 * uses the 0x06 domain padding, Ethereum the original 0x01). */
#include "teex/crypto.h"

#include "teex/mem.h"

#include <nettle/sha3.h>
#include <string.h>

#define KECCAK256_RATE 136 /* bytes: 1600 bits - 2 * 256 */

_Static_assert(sizeof(((struct sha3_state *)0)->a) ==
                   sizeof(((struct teex_keccak_ctx *)0)->state),
               "keccak state layout");

static void absorb_byte(struct teex_keccak_ctx *c, size_t pos, uint8_t b) {
  c->state[pos / 8] ^= (uint64_t)b << (8 * (pos % 8));
}

static void permute(struct teex_keccak_ctx *c) {
  nettle_sha3_permute((struct sha3_state *)c->state);
}

void teex_keccak256_init(struct teex_keccak_ctx *c) {
  memset(c, 0, sizeof *c);
}

void teex_keccak256_update(struct teex_keccak_ctx *c, const void *p, size_t n) {
  const uint8_t *in = p;
  while (n > 0) {
    /* Whole aligned lanes when possible. */
    if (c->pos % 8 == 0 && n >= 8 && c->pos + 8 <= KECCAK256_RATE) {
      uint64_t lane = 0;
      for (int i = 7; i >= 0; i--)
        lane = lane << 8 | in[i];
      c->state[c->pos / 8] ^= lane;
      c->pos += 8;
      in += 8;
      n -= 8;
    } else {
      absorb_byte(c, c->pos, *in++);
      c->pos++;
      n--;
    }
    if (c->pos == KECCAK256_RATE) {
      permute(c);
      c->pos = 0;
    }
  }
}

void teex_keccak256_final(struct teex_keccak_ctx *c, uint8_t out[32]) {
  absorb_byte(c, c->pos, 0x01);
  absorb_byte(c, KECCAK256_RATE - 1, 0x80);
  permute(c);
  for (size_t i = 0; i < 32; i++)
    out[i] = (uint8_t)(c->state[i / 8] >> (8 * (i % 8)));
  teex_wipe(c, sizeof *c);
}

void teex_keccak256(const void *p, size_t n, uint8_t out[32]) {
  struct teex_keccak_ctx c;
  teex_keccak256_init(&c);
  teex_keccak256_update(&c, p, n);
  teex_keccak256_final(&c, out);
}
