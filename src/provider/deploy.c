/* Provider deployment (see include/teex/provider.h). */
#include "teex/provider.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm.h"
#include "teex/statements.h"

#include "teex/chain.h"
#include "teex/config.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPLOY_TIMEOUT_MS 60000

void teex_service_id(const uint8_t provider[20], const char *name,
                     uint8_t out[32]) {
  struct teex_keccak_ctx c;
  teex_keccak256_init(&c);
  teex_keccak256_update(&c, "teex/service-id/v1", 18);
  teex_keccak256_update(&c, provider, 20);
  teex_keccak256_update(&c, name, strlen(name));
  teex_keccak256_final(&c, out);
}

static int sm_info(struct teex_rpc_sync *c, struct teex_deployed *out,
                   struct teex_err *err) {
  struct teex_buf resp;
  teex_buf_init(&resp, 4096, 0);
  int rc =
      teex_rpc_sync_call(c, "sm.Info", NULL, 0, DEPLOY_TIMEOUT_MS, &resp, err);
  if (rc == 0) {
    Teex__Sm__InfoResponse *info =
        teex__sm__info_response__unpack(NULL, resp.len, resp.data);
    if (info == NULL || info->address.len != 20 ||
        info->service_registry.len != 20) {
      rc = teex_err_set(err, TEEX_EPROTO, "malformed sm.Info answer");
    } else {
      memcpy(out->sm_address, info->address.data, 20);
      out->chain_id = info->chain_id;
      memcpy(out->service_registry, info->service_registry.data, 20);
    }
    if (info != NULL)
      teex__sm__info_response__free_unpacked(info, NULL);
  }
  teex_buf_free(&resp);
  return rc;
}

int teex_service_deploy(const struct teex_deploy_request *req,
                        struct teex_deployed *out, struct teex_err *err) {
  struct teex_image *img = NULL;
  uint8_t *archive = NULL, *ct = NULL, *wire = NULL;
  size_t archive_len = 0, ct_len = 0, wire_len = 0;
  struct teex_tls_ctx *ctx = NULL;
  struct teex_rpc_sync *c = NULL;
  struct teex_buf resp;
  if (req->n_datasets > 16 || (req->n_datasets > 0 && !req->dataset_ids))
    return teex_err_set(err, TEEX_EINVAL, "at most 16 service datasets");
  teex_buf_init(&resp, 4096, 0);
  uint8_t *image_key = teex_secret_alloc(32);
  int rc;
  memset(out, 0, sizeof *out);
  if (image_key == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);

  uint8_t pub[64];
  if ((rc = teex_secp256k1_public(req->provider_sk, pub)) != 0) {
    teex_err_set(err, rc, "provider key invalid");
    goto out;
  }
  teex_eth_address(pub, out->provider);

  rc = teex_image_pack(req->service_dir, &img, &archive, &archive_len, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "pack %s", req->service_dir);
    goto out;
  }
  snprintf(out->name, sizeof out->name, "%s", img->manifest.name);
  memcpy(out->image_hash, img->hash, 32);
  teex_service_id(out->provider, out->name, out->service_id);
  out->version = req->version ? req->version : 1;

  teex_random(image_key, 32);
  rc = teex_image_encrypt(image_key, archive, archive_len, &ct, &ct_len, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "encrypt image");
    goto out;
  }
  struct teex_cid cid;
  rc = teex_ipfs_add_buffer(req->ipfs, ct, ct_len, &cid, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "ipfs");
    goto out;
  }
  teex_cid_to_string(&cid, out->image_cid);

  /* The public description: what the app store shows. Never the code. */
  {
    json_t *meta = json_pack(
        "{s:s, s:s, s:s, s:b, s:s, s:s}", "name", img->manifest.name, "version",
        img->manifest.version, "description", img->manifest.description,
        "stateless", img->manifest.stateless, "style",
        img->manifest.style == TEEX_STYLE_SCRIPT ? "script" : "function",
        "image_cid", out->image_cid);
    if (meta != NULL && req->n_datasets > 0) {
      json_t *arr = json_array();
      for (size_t i = 0; arr != NULL && i < req->n_datasets; i++) {
        char h[67] = "0x";
        teex_hex_encode(req->dataset_ids + 32 * i, 32, h + 2);
        json_array_append_new(arr, json_string(h));
      }
      json_object_set_new(meta, "datasets", arr);
    }
    char *text = meta ? json_dumps(meta, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(meta);
    if (text == NULL) {
      rc = teex_err_set(err, TEEX_ENOMEM, "service description");
      goto out;
    }
    struct teex_cid mcid;
    rc = teex_ipfs_add_buffer(req->ipfs, text, strlen(text), &mcid, err);
    free(text);
    if (rc != 0) {
      teex_err_wrap(err, rc, "ipfs (description)");
      goto out;
    }
    teex_cid_to_string(&mcid, out->metadata_cid);
  }

  struct teex_ratls_verifier verifier = {.policy = req->sm_policy};
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &verifier};
  if ((rc = teex_tls_ctx_new(&ctx, &tc, 0, err)) != 0 ||
      (rc = teex_rpc_sync_connect(req->sm_addr, ctx, DEPLOY_TIMEOUT_MS, &c,
                                  err)) != 0) {
    teex_err_wrap(err, rc, "connect SM");
    goto out;
  }
  if ((rc = sm_info(c, out, err)) != 0) {
    teex_err_wrap(err, rc, "SM info");
    goto out;
  }

  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  memcpy(r.service_id, out->service_id, 32);
  r.version = out->version;
  memcpy(r.provider, out->provider, 20);
  memcpy(r.image_hash, out->image_hash, 32);
  snprintf(r.image_cid, sizeof r.image_cid, "%s", out->image_cid);
  uint8_t digest[32], sig[65];
  teex_sm_register_digest(&r, out->chain_id, out->sm_address, digest);
  if ((rc = teex_stmt_sign(req->provider_sk, digest, sig)) != 0)
    goto out;

  Teex__Sm__RegisterServiceRequest m = TEEX__SM__REGISTER_SERVICE_REQUEST__INIT;
  m.service_id = (ProtobufCBinaryData){32, out->service_id};
  m.version = out->version;
  m.provider = (ProtobufCBinaryData){20, out->provider};
  m.image_hash = (ProtobufCBinaryData){32, out->image_hash};
  m.image_cid = out->image_cid;
  m.image_key = (ProtobufCBinaryData){32, image_key};
  m.image_ciphertext = (ProtobufCBinaryData){ct_len, ct};
  m.provider_sig = (ProtobufCBinaryData){65, sig};
  wire_len = teex__sm__register_service_request__get_packed_size(&m);
  wire = malloc(wire_len);
  if (wire == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto out;
  }
  teex__sm__register_service_request__pack(&m, wire);
  rc = teex_rpc_sync_call(c, "sm.RegisterService", wire, wire_len,
                          DEPLOY_TIMEOUT_MS, &resp, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "SM refused");
    goto out;
  }
  Teex__Sm__RegisterServiceResponse *reg =
      teex__sm__register_service_response__unpack(NULL, resp.len, resp.data);
  if (reg == NULL || reg->signing_key.len != 20 ||
      reg->encryption_key.len != 32 || reg->listing_sig.len != 65) {
    if (reg != NULL)
      teex__sm__register_service_response__free_unpacked(reg, NULL);
    rc = teex_err_set(err, TEEX_EPROTO, "malformed SM answer");
    goto out;
  }
  memcpy(out->signing_key, reg->signing_key.data, 20);
  memcpy(out->encryption_key, reg->encryption_key.data, 32);
  memcpy(out->listing_sig, reg->listing_sig.data, 65);
  teex__sm__register_service_response__free_unpacked(reg, NULL);

  /* Check the SM's signature ourselves: the listing must verify on chain. */
  struct teex_service_listing l;
  memcpy(l.service_id, out->service_id, 32);
  memcpy(l.provider, out->provider, 20);
  l.version = out->version;
  memcpy(l.signing_key, out->signing_key, 20);
  memcpy(l.encryption_key, out->encryption_key, 32);
  memcpy(l.image_hash, out->image_hash, 32);
  struct teex_domain dom = {.chain_id = out->chain_id};
  memcpy(dom.verifying_contract, out->service_registry, 20);
  uint8_t signer[20];
  teex_stmt_service_listing_digest(&dom, &l, digest);
  if (teex_stmt_recover(digest, out->listing_sig, signer) != 0 ||
      memcmp(signer, out->sm_address, 20) != 0)
    rc = teex_err_set(err, TEEX_EBADSIG,
                      "the SM's listing signature does not verify");
out:
  if (wire != NULL) {
    teex_wipe(wire, wire_len); /* it held the image key */
    free(wire);
  }
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
  teex_buf_free(&resp);
  free(ct);
  if (archive != NULL)
    teex_image_bytes_free(archive, archive_len);
  teex_image_free(img);
  teex_secret_free(image_key);
  return rc;
}

int teex_deployed_write_json(const struct teex_deployed *d, const char *path,
                             struct teex_err *err) {
  char id[65], img[65], prov[43], sm[43], sk[43], ek[65], sig[131];
  teex_hex_encode(d->service_id, 32, id);
  teex_hex_encode(d->image_hash, 32, img);
  teex_eth_address_hex(d->provider, prov);
  teex_eth_address_hex(d->sm_address, sm);
  teex_eth_address_hex(d->signing_key, sk);
  teex_hex_encode(d->encryption_key, 32, ek);
  teex_hex_encode(d->listing_sig, 65, sig);
  FILE *f = path ? fopen(path, "w") : stdout;
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "write %s: %s", path, strerror(errno));
  fprintf(f,
          "{\"service_id\":\"0x%s\",\"name\":\"%s\",\"version\":%u,"
          "\"image_hash\":\"0x%s\",\"image_cid\":\"%s\","
          "\"metadata_cid\":\"%s\",\"provider\":\"%s\","
          "\"sm\":\"%s\",\"chain_id\":%llu,\"signing_key\":\"%s\","
          "\"encryption_key\":\"0x%s\",\"listing_sig\":\"0x%s\"}\n",
          id, d->name, d->version, img, d->image_cid, d->metadata_cid, prov, sm,
          (unsigned long long)d->chain_id, sk, ek, sig);
  if (path != NULL && fclose(f) != 0)
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  return 0;
}

int teex_service_list_on_chain(const struct teex_deployed *d,
                               const uint8_t provider_sk[32],
                               const char *chain_conf, const char *price,
                               const char *remuneration, int is_private,
                               struct teex_err *err) {
  struct teex_config c;
  struct teex_chain_addrs addrs;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *sender = NULL;
  struct teex_chain_service svc;
  memset(&svc, 0, sizeof svc);
  teex_config_init(&c);
  int rc = teex_config_load(&c, chain_conf, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&c, &addrs, err);
  if (rc != 0)
    goto out;
  if (memcmp(addrs.service_registry, d->service_registry, 20) != 0 ||
      addrs.chain_id != d->chain_id) {
    rc = teex_err_set(err, TEEX_ECONFIG,
                      "the SM signs for another registry or chain than %s",
                      chain_conf);
    goto out;
  }
  if (teex_amount_parse(price, &svc.price) != 0 ||
      teex_amount_parse(remuneration, &svc.remuneration) != 0) {
    rc = teex_err_set(err, TEEX_EINVAL, "price and remuneration are wei");
    goto out;
  }
  if (svc.remuneration > svc.price) {
    rc = teex_err_set(err, TEEX_EINVAL,
                      "remuneration (to the worker) exceeds the price");
    goto out;
  }
  memcpy(svc.service_id, d->service_id, 32);
  memcpy(svc.provider, d->provider, 20);
  svc.version = d->version;
  memcpy(svc.signing_key, d->signing_key, 20);
  memcpy(svc.encryption_key, d->encryption_key, 32);
  memcpy(svc.image_hash, d->image_hash, 32);
  snprintf(svc.metadata_cid, sizeof svc.metadata_cid, "%s", d->metadata_cid);
  const char *url = teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC);
  if ((rc = teex_eth_rpc_open(url, NULL, &rpc, err)) != 0 ||
      (rc = teex_eth_sender_new(rpc, provider_sk, NULL, &sender, err)) != 0)
    goto out;
  teex_chain_use_errors(rpc);
  svc.is_private = is_private;
  rc = d->version == 1 ? teex_chain_list_service(sender, &addrs, &svc,
                                                 d->listing_sig, 0, err)
                       : teex_chain_publish_version(sender, &addrs, &svc,
                                                    d->listing_sig, 0, err);
  if (rc == 0 && d->version != 1 && is_private)
    rc = teex_chain_set_private(sender, &addrs, svc.service_id, 1, 0, err);
out:
  if (rc != 0)
    teex_err_wrap(err, rc, "list on chain");
  teex_eth_sender_free(sender);
  teex_eth_rpc_close(rpc);
  teex_config_free(&c);
  return rc;
}

int teex_service_set_access(const uint8_t service_id[32],
                            const uint8_t provider_sk[32],
                            const char *chain_conf,
                            const struct teex_service_access *acc,
                            struct teex_err *err) {
  struct teex_config c;
  struct teex_chain_addrs addrs;
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *sender = NULL;
  if (acc->nallow > TEEX_CHAIN_MAX_ACCESS_LIST ||
      acc->ndeny > TEEX_CHAIN_MAX_ACCESS_LIST)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "at most %d addresses to allow or deny at once",
                        TEEX_CHAIN_MAX_ACCESS_LIST);
  teex_config_init(&c);
  int rc = teex_config_load(&c, chain_conf, err);
  if (rc == 0)
    rc = teex_chain_addrs_from_config(&c, &addrs, err);
  if (rc == 0)
    rc = teex_eth_rpc_open(
        teex_config_get(&c, "rpc_url", TEEX_CHAIN_DEFAULT_RPC), NULL, &rpc,
        err);
  if (rc == 0)
    rc = teex_eth_sender_new(rpc, provider_sk, NULL, &sender, err);
  if (rc == 0)
    teex_chain_use_errors(rpc);
  if (rc == 0 && acc->nallow > 0)
    rc = teex_chain_set_allowed(sender, &addrs, service_id, acc->allow,
                                acc->nallow, 1, 0, err);
  if (rc == 0 && acc->ndeny > 0)
    rc = teex_chain_set_allowed(sender, &addrs, service_id, acc->deny,
                                acc->ndeny, 0, 0, err);
  if (rc == 0 && acc->visibility >= 0)
    rc = teex_chain_set_private(sender, &addrs, service_id, acc->visibility, 0,
                                err);
  if (rc != 0)
    teex_err_wrap(err, rc, "service access");
  teex_eth_sender_free(sender);
  teex_eth_rpc_close(rpc);
  teex_config_free(&c);
  return rc;
}
