/* Internal helpers of the tee module: big-endian integers, the sim backend
 * table entry and the sim key files. */
#ifndef TEEX_TEE_INTERNAL_H
#define TEEX_TEE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "teex/tee.h"

static inline void tee_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void tee_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline void tee_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline uint16_t tee_get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t tee_get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t tee_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

/* The sim backend (sim.c). */
extern const struct teex_tee_backend teex_tee_sim_backend;

#endif
