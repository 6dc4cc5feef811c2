/* TEE-DS scale-out: the placement directory (which groups exist, how to
 * reach them, which group owns which namespace) and the placement record a
 * group keeps for a namespace that is moving or has moved away.
 *
 * The directory is a small text document signed (Ed25519) by the
 * deployment's placement key; clients accept only a directory that verifies
 * against the placement public key they were configured with, and never go
 * back to a lower epoch. A namespace is owned by its explicit placement if
 * it has one, else by rendezvous hashing over the groups marked "hash".
 * I/O-free; docs/internals/ds.md "Scale-out". Parser fuzzed:
 * fuzz/fuzz_ds_place.c. */
#ifndef TEEX_DS_PLACE_H
#define TEEX_DS_PLACE_H

#include "teex/ds.h"
#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_DS_DIR_MAX (48 * 1024) /* signed directory text, bytes */
#define TEEX_DS_DIR_GROUPS_MAX 64   /* groups in one directory */
#define TEEX_DS_DIR_MEMBERS_MAX 7   /* replicas listed per group */
#define TEEX_DS_DIR_PLACES_MAX 512  /* explicit placements */
#define TEEX_DS_DIR_ADDR_MAX 127    /* "host:port" of a replica */
#define TEEX_DS_DIR_EPOCH_MAX (1ull << 62)

/* One group: id (>= 1), whether it takes part in default (hash) placement,
 * the SHA-256 of the evidence policy file its replicas satisfy (a client
 * reaches the group only with a TLS context checking that policy), and its
 * replicas' client RPC addresses. */
struct teex_ds_dir_group {
  uint64_t id;
  int hashed;
  uint8_t policy[32];
  char members[TEEX_DS_DIR_MEMBERS_MAX][TEEX_DS_DIR_ADDR_MAX + 1];
  size_t n_members;
};

struct teex_ds_dir_place {
  char ns[TEEX_DS_NS_MAX + 1];
  uint64_t group;
};

/* A directory (about 100 KB: allocate it, do not put it on the stack).
 * groups sorted by id, places by namespace (bytewise), no duplicates. */
struct teex_ds_dir {
  uint64_t epoch;
  struct teex_ds_dir_group groups[TEEX_DS_DIR_GROUPS_MAX];
  size_t n_groups;
  struct teex_ds_dir_place places[TEEX_DS_DIR_PLACES_MAX];
  size_t n_places;
};

/* Text layout (every line ends with '\n'; numbers decimal, canonical):
 *   teex-ds-directory v1
 *   epoch E
 *   group ID hash|nohash POLICY_SHA256_HEX ADDR[,ADDR...]     (1..64)
 *   place NS GROUP_ID                                          (0..512)
 *   signature ED25519_SIG_HEX
 * The signature covers "teex ds directory v1" NUL followed by every byte
 * before the signature line. */

/* Checks d: epoch 1..2^62, groups 1..64 sorted by id without duplicates,
 * 1..7 members each with a valid address, places sorted without duplicates
 * naming valid namespaces and existing groups. TEEX_EINVAL with a message. */
int teex_ds_dir_validate(const struct teex_ds_dir *d, struct teex_err *err);

/* Parses a signed directory without checking the signature: fills d, the
 * length of the signed body and the signature. Accepts exactly what
 * teex_ds_dir_sign writes. TEEX_EFORMAT / TEEX_ETOOBIG / TEEX_EVERSION /
 * TEEX_EINVAL (validation), with the line number in err. */
int teex_ds_dir_parse(const uint8_t *text, size_t len, struct teex_ds_dir *d,
                      size_t *body_len, uint8_t sig[64], struct teex_err *err);

/* Parses and verifies against the placement public key: the parser's
 * errors, or TEEX_EBADSIG (unsigned, forged or altered). */
int teex_ds_dir_open(const uint8_t *text, size_t len, const uint8_t pk[32],
                     struct teex_ds_dir *d, struct teex_err *err);

/* Validates d and writes its signed text into out (cap bytes; *out_len).
 * TEEX_EINVAL, TEEX_ETOOBIG (over cap or TEEX_DS_DIR_MAX). */
int teex_ds_dir_sign(const struct teex_ds_dir *d, const uint8_t sk[64],
                     uint8_t *out, size_t cap, size_t *out_len,
                     struct teex_err *err);

/* The group with this id, or NULL. */
const struct teex_ds_dir_group *teex_ds_dir_group(const struct teex_ds_dir *d,
                                                  uint64_t id);

/* Rendezvous score of ns on a group: the first 8 bytes (big-endian) of
 * SHA-256("teex ds place v1" NUL | len(ns) | ns | group id (8, BE)). */
uint64_t teex_ds_place_score(const char *ns, uint64_t group);

/* The group the hash places ns on: the highest score among the "hash"
 * groups (ties: the lower id); 0 when no group is marked hash. */
uint64_t teex_ds_dir_hash_owner(const struct teex_ds_dir *d, const char *ns);

/* The owner of ns: its explicit placement, else the hash owner; 0: none. */
uint64_t teex_ds_dir_owner(const struct teex_ds_dir *d, const char *ns);

/* Sets ns's explicit placement to group (group 0 removes it), keeping the
 * list sorted. TEEX_EINVAL (bad namespace, unknown group), TEEX_ETOOBIG. */
int teex_ds_dir_set_place(struct teex_ds_dir *d, const char *ns, uint64_t group,
                          struct teex_err *err);

/* Adds g (or replaces the group with its id), keeping the list sorted.
 * TEEX_EINVAL, TEEX_ETOOBIG. */
int teex_ds_dir_put_group(struct teex_ds_dir *d,
                          const struct teex_ds_dir_group *g,
                          struct teex_err *err);

/* ---- the placement record (the value of a TEEX_DS_PLACE command) ---- */

enum teex_ds_place_state {
  TEEX_DS_PLACE_OWNED = 0,  /* served here (clears a marker) */
  TEEX_DS_PLACE_FROZEN = 1, /* moving away: writes refused, reads served */
  TEEX_DS_PLACE_MOVED = 2,  /* gone: every command answered TEEX_EMOVED */
};

/* "TXP1" | state (1) | group (8, BE) | epoch (8, BE) | dir_len (4, BE) | dir
 * dir: the signed directory of that epoch (empty for OWNED and allowed for
 * FROZEN) — what a client that was sent away verifies and follows. */
#define TEEX_DS_PLACE_RECORD_HDR 25
#define TEEX_DS_PLACE_RECORD_MAX (TEEX_DS_PLACE_RECORD_HDR + TEEX_DS_DIR_MAX)

struct teex_ds_place_record {
  uint8_t state;
  uint64_t group;     /* the destination (FROZEN, MOVED) */
  uint64_t epoch;     /* the directory epoch that places ns there */
  const uint8_t *dir; /* into the parsed buffer */
  size_t dir_len;
};

/* Encodes into a malloc'd buffer (*out; caller frees). TEEX_EINVAL,
 * TEEX_ETOOBIG, TEEX_ENOMEM. */
int teex_ds_place_record_encode(const struct teex_ds_place_record *r,
                                uint8_t **out, size_t *out_len);

/* Parses p (which must outlive r). TEEX_EFORMAT, TEEX_ETOOBIG. */
int teex_ds_place_record_parse(const uint8_t *p, size_t n,
                               struct teex_ds_place_record *r);

#endif
