/* Internal: the state-machine hooks a replica gives its consensus. */
#ifndef TEEX_DS_REPLICA_H
#define TEEX_DS_REPLICA_H

#include "ds/consensus.h"
#include "teex/ds.h"

/* Hooks whose sm argument is a struct teex_ds_replica *. */
extern const struct teex_ds_sm_hooks teex_ds_replica_hooks;

/* Sealed entry layout (see include/teex/ds.h). */
#define TEEX_DS_ENTRY_MAGIC "TXD1"
#define TEEX_DS_ENTRY_HDR 36

#endif
