/* The chain side of TEE-DS freshness (include/teex/ds_anchor.h) for the
 * CLI: reading a chain.conf for `teex ds run --chain-conf`, and `teex ds
 * anchor`, which commits the group's current log head to the DsAnchor
 * contract. */
#include "cli/cli.h"

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/eip712.h"
#include "teex/ds_anchor.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/eth_tx.h"
#include "teex/ipfs.h"
#include "teex/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cmd_ds_anchor.h"

int teex_cli_ds_chain_conf(const char *path, char *rpc_url, size_t cap,
                           struct teex_chain_addrs *a, struct teex_err *err) {
  struct teex_config c;
  teex_config_init(&c);
  int rc = teex_config_load(&c, path, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&c, a, err);
  const char *url = teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC);
  if (rc == 0 && !teex_chain_has_ds_anchor(a))
    rc = teex_err_set(err, TEEX_ECONFIG,
                      "%s: no ds_anchor (deploy the contracts again: teex "
                      "chain deploy)",
                      path);
  if (rc == 0 && snprintf(rpc_url, cap, "%s", url) >= (int)cap)
    rc = teex_err_set(err, TEEX_ECONFIG, "%s: rpc_url too long", path);
  teex_config_free(&c);
  return rc == 0 ? 0 : teex_err_wrap(err, rc, "%s", path);
}

int teex_cli_ds_read_key(const char *file, uint8_t sk[32],
                         struct teex_err *err) {
  char buf[160];
  size_t n;
  FILE *f = fopen(file, "r");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "%s: %s", file, strerror(errno));
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  buf[strcspn(buf, " \r\n")] = 0;
  int r = teex_hex_decode(buf, sk, 32, &n);
  teex_wipe(buf, sizeof buf);
  if (r != 0 || n != 32)
    return teex_err_set(err, TEEX_EINVAL, "%s: not a 32-byte hex key", file);
  return 0;
}

int teex_cli_ds_anchor_submit(const char *chain_conf, const char *key_file,
                              const uint8_t ds_group_id[16], uint64_t index,
                              uint64_t term, const uint8_t applied_chain[32],
                              const char *doc_out, struct teex_err *err) {
  char url[512], doc[1024];
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *snd = NULL;
  struct teex_eth_rpc_opts ro = {.timeout_ms = 20000};
  struct teex_ds_anchor c, cur;
  struct teex_domain d;
  struct teex_cid cid;
  uint8_t sk[32], pub[64], me[20], digest[32], sig[65];
  int rc = teex_cli_ds_chain_conf(chain_conf, url, sizeof url, &a, err);
  if (rc == 0)
    rc = teex_cli_ds_read_key(key_file, sk, err);
  if (rc != 0)
    return rc;
  if (teex_secp256k1_public(sk, pub) != 0) {
    teex_wipe(sk, sizeof sk);
    return teex_err_set(err, TEEX_EINVAL, "%s: not a secp256k1 key", key_file);
  }
  teex_eth_address(pub, me);
  memset(&c, 0, sizeof c);
  teex_ds_anchor_group_id(ds_group_id, c.group_id);
  c.index = index;
  c.term = term;
  c.time_ms = (uint64_t)time(NULL) * 1000;
  memcpy(c.applied_chain, applied_chain, 32);
  int dn = teex_ds_anchor_document(&c, doc, sizeof doc);
  if (dn < 0) {
    rc = teex_err_set(err, TEEX_EINTERNAL, "commitment document");
    goto done;
  }
  teex_keccak256(doc, (size_t)dn, c.commitment_hash);
  teex_cid_of_block(TEEX_CODEC_RAW, doc, (size_t)dn, &cid);
  teex_cid_to_string(&cid, c.cid);
  if (doc_out != NULL) {
    FILE *f = fopen(doc_out, "wb");
    if (f == NULL || fwrite(doc, 1, (size_t)dn, f) != (size_t)dn) {
      if (f)
        fclose(f);
      rc = teex_err_set(err, TEEX_EIO, "%s: %s", doc_out, strerror(errno));
      goto done;
    }
    fclose(f);
  }
  if ((rc = teex_eth_rpc_open(url, &ro, &rpc, err)) != 0)
    goto done;
  teex_chain_use_errors(rpc);
  if ((rc = teex_eth_sender_new(rpc, sk, NULL, &snd, err)) != 0)
    goto done;
  /* The first anchor of a group creates it, owned and signed by this key. */
  if (teex_chain_ds_anchor_latest(rpc, &a, c.group_id, &cur, err) == 0 &&
      cur.index == 0) {
    const uint8_t(*list)[20] = (const uint8_t(*)[20])me;
    rc =
        teex_chain_ds_anchor_create_group(snd, &a, c.group_id, list, 1, 0, err);
    if (rc == TEEX_ECHAIN && strstr(err->msg, "GroupExists") != NULL)
      rc = 0; /* created before, never anchored */
    if (rc != 0)
      goto done;
  }
  d.chain_id = teex_eth_sender_chain_id(snd);
  memcpy(d.verifying_contract, a.ds_anchor, 20);
  teex_ds_anchor_digest(&d, &c, digest);
  if (teex_eip712_sign(sk, digest, sig) != 0) {
    rc = teex_err_set(err, TEEX_EINTERNAL, "signing the anchor");
    goto done;
  }
  rc = teex_chain_ds_anchor_submit(snd, &a, &c, sig, 0, err);
  if (rc == 0)
    printf("anchored index %" PRIu64 " term %" PRIu64 " cid %s\n", index, term,
           c.cid);
done:
  teex_wipe(sk, sizeof sk);
  teex_eth_sender_free(snd);
  teex_eth_rpc_close(rpc);
  return rc;
}

int teex_cli_ds_anchor_enroll(const char *chain_conf, const char *key_file,
                              const uint8_t ds_group_id[16],
                              const uint8_t (*enclaves)[20], size_t n,
                              struct teex_err *err) {
  char url[512];
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *snd = NULL;
  struct teex_eth_rpc_opts ro = {.timeout_ms = 20000};
  uint8_t sk[32], gid[32];
  if (n == 0 || n > TEEX_DS_ANCHOR_MAX_ANCHORERS)
    return teex_err_set(err, TEEX_EINVAL, "1..%d anchorers",
                        TEEX_DS_ANCHOR_MAX_ANCHORERS);
  int rc = teex_cli_ds_chain_conf(chain_conf, url, sizeof url, &a, err);
  if (rc == 0)
    rc = teex_cli_ds_read_key(key_file, sk, err);
  if (rc != 0)
    return rc;
  teex_ds_anchor_group_id(ds_group_id, gid);
  if ((rc = teex_eth_rpc_open(url, &ro, &rpc, err)) != 0)
    goto done;
  teex_chain_use_errors(rpc);
  if ((rc = teex_eth_sender_new(rpc, sk, NULL, &snd, err)) != 0)
    goto done;
  rc = teex_chain_ds_anchor_create_group(snd, &a, gid, enclaves, n, 0, err);
  if (rc == TEEX_ECHAIN && strstr(err->msg, "GroupExists") != NULL) {
    teex_err_clear(err);
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = teex_chain_ds_anchor_set(snd, &a, gid, enclaves[i], 1, 0, err);
  }
done:
  teex_wipe(sk, sizeof sk);
  teex_eth_sender_free(snd);
  teex_eth_rpc_close(rpc);
  return rc;
}

int teex_cli_ds_anchor_show(const char *chain_conf,
                            const uint8_t ds_group_id[16],
                            struct teex_err *err) {
  char url[512];
  struct teex_chain_addrs a;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_rpc_opts ro = {.timeout_ms = 10000};
  struct teex_ds_anchor c;
  uint8_t gid[32];
  int rc = teex_cli_ds_chain_conf(chain_conf, url, sizeof url, &a, err);
  if (rc != 0)
    return rc;
  teex_ds_anchor_group_id(ds_group_id, gid);
  if ((rc = teex_eth_rpc_open(url, &ro, &rpc, err)) == 0) {
    teex_chain_use_errors(rpc);
    rc = teex_chain_ds_anchor_latest(rpc, &a, gid, &c, err);
  }
  teex_eth_rpc_close(rpc);
  if (rc != 0)
    return teex_err_wrap(err, rc, "reading the anchor");
  if (c.index == 0) {
    printf("chain anchor: none\n");
    return 0;
  }
  char signer[41], digest[65], hash[65], chain[65];
  teex_hex_encode(c.signer, 20, signer);
  teex_hex_encode(c.state_digest, 32, digest);
  teex_hex_encode(c.commitment_hash, 32, hash);
  teex_hex_encode(c.applied_chain, 32, chain);
  printf("chain anchor: index %" PRIu64 " term %" PRIu64 " at %" PRIu64
         " signer 0x%s cid %s\n"
         "chain anchor state_digest %s commitment_hash %s applied_chain %s\n",
         c.index, c.term, c.anchored_at, signer, c.cid, digest, hash, chain);
  return 0;
}
