/* Internal: the state-machine hooks a replica gives its consensus. */
#ifndef TEEX_DS_REPLICA_H
#define TEEX_DS_REPLICA_H

#include "ds/consensus.h"
#include "teex/ds.h"

/* Hooks whose sm argument is a struct teex_ds_replica *. */
extern const struct teex_ds_sm_hooks teex_ds_replica_hooks;

/* Sealed entry layout (see include/teex/ds.h). */
/* TXD1: magic | group 16 | term u64 | seq u64 (36 bytes, key epoch 0);
 * TXD2: magic | group 16 | epoch u32 | term u64 | seq u64 (40 bytes). The
 * header is the AEAD's associated data. Snapshots likewise: TXS1/TXS2
 * (36-byte header, epoch 0) and TXS3 (40 bytes, with the epoch). */
#define TEEX_DS_ENTRY_MAGIC "TXD1"
#define TEEX_DS_ENTRY_MAGIC2 "TXD2"
#define TEEX_DS_ENTRY_HDR 36
#define TEEX_DS_ENTRY_HDR2 40

#endif
