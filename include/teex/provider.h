/* The provider's side of deploying a secure service (docs/network.md):
 * pack the folder, encrypt the image under a fresh image key, store the
 * ciphertext on IPFS, verify the Service Manager's evidence (RA-TLS) and
 * hand it the image key with a registration signed by the provider's
 * account, and get back the service keys and the SM's listing signature
 * (what the ServiceRegistry checks on chain). */
#ifndef TEEX_PROVIDER_H
#define TEEX_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"
#include "teex/ipfs.h"
#include "teex/tee_policy.h"

struct teex_deploy_request {
  const char *service_dir;    /* the service folder to pack */
  const uint8_t *provider_sk; /* 32 bytes: the provider account's key */
  const char *sm_addr;        /* the SM's client endpoint, host:port */
  const struct teex_tee_policy *sm_policy; /* what the SM must prove */
  struct teex_ipfs_backend *ipfs;          /* where the ciphertext goes */
  uint32_t version; /* 0: 1 for a new service (see below) */
  /* Datasets every task of the service gets, before the task's own
   * (32-byte ids, at most 16): written into the public description on
   * IPFS as "datasets", where `teex invoke` reads them. */
  const uint8_t *dataset_ids;
  size_t n_datasets;
};

struct teex_deployed {
  uint8_t service_id[32];
  uint32_t version;
  char name[65];
  uint8_t image_hash[32];
  char image_cid[129];
  char metadata_cid[129]; /* the public description (JSON) on IPFS */
  uint8_t provider[20];
  uint8_t sm_address[20];
  uint64_t chain_id;
  uint8_t service_registry[20]; /* the registry the SM signs for */
  uint8_t signing_key[20];      /* the service's secp256k1 address */
  uint8_t encryption_key[32];   /* the service's X25519 public key */
  uint8_t listing_sig[65];      /* the SM's EIP-712 ServiceListing signature */
};

/* The service id of a provider's service: keccak256("teex/service-id/v1" ||
 * provider || name). Versions share it. */
void teex_service_id(const uint8_t provider[20], const char *name,
                     uint8_t out[32]);

/* Runs the whole deployment. The image key never leaves this process except
 * inside the RA-TLS session with the verified SM, and is wiped after.
 * Errors are wrapped with the step ("pack", "ipfs", "connect SM", "SM
 * refused"). */
int teex_service_deploy(const struct teex_deploy_request *req,
                        struct teex_deployed *out, struct teex_err *err);

/* Lists the deployed service on chain from the provider's account (version
 * 1: listService; later: publishVersion) with the SM's signature: price and
 * remuneration in wei per call (the provider keeps the difference).
 * is_private lists version 1 as private (only the provider and the
 * addresses it allows may invoke it); for a later version it makes the
 * service private if it was not (0 leaves the visibility as it is).
 * chain_conf is a network's chain.conf. Errors wrapped "list on chain". */
int teex_service_list_on_chain(const struct teex_deployed *d,
                               const uint8_t provider_sk[32],
                               const char *chain_conf, const char *price,
                               const char *remuneration, int is_private,
                               struct teex_err *err);

/* Who may invoke a listed service (ServiceRegistry.setAllowed/setPrivate),
 * changed from the provider's account. Applied in this order, one
 * transaction each: allow, deny, then the visibility, so that making a
 * service private with an allow-list never refuses an allowed caller in
 * between. */
struct teex_service_access {
  int visibility; /* -1: unchanged, 0: public, 1: private */
  const uint8_t (*allow)[20];
  size_t nallow; /* at most TEEX_CHAIN_MAX_ACCESS_LIST */
  const uint8_t (*deny)[20];
  size_t ndeny; /* at most TEEX_CHAIN_MAX_ACCESS_LIST */
};
int teex_service_set_access(const uint8_t service_id[32],
                            const uint8_t provider_sk[32],
                            const char *chain_conf,
                            const struct teex_service_access *acc,
                            struct teex_err *err);

/* Writes / reads a deployment record as JSON (what `teex invoke` and the
 * on-chain listing need). */
int teex_deployed_write_json(const struct teex_deployed *d, const char *path,
                             struct teex_err *err);

#endif
