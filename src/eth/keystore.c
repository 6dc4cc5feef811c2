/* Web3 Secret Storage v3. */
#include "teex/keystore.h"

#include "teex/crypto.h"
#include "teex/mem.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const struct teex_keystore_params teex_keystore_standard = {262144, 8, 1};

static int aes128ctr(const uint8_t key[16], const uint8_t iv[16],
                     const uint8_t *in, size_t n, uint8_t *out) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int len = 0, ok;
  if (!c)
    return TEEX_ENOMEM;
  ok = EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv) == 1 &&
       EVP_EncryptUpdate(c, out, &len, in, (int)n) == 1 && (size_t)len == n;
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : TEEX_ECRYPTO;
}

/* libsodium's low-level scrypt: unlike OpenSSL's it does not impose RFC
 * 7914's N < 2^(16 r), which keystores in the wild (the Web3 Secret Storage
 * specification's own vector: N = 2^18, r = 1) do not respect. Memory is
 * bounded by check_scrypt_params before this runs. */
static int scrypt(const char *pw, const uint8_t *salt, size_t salt_len,
                  uint64_t n, uint64_t r, uint64_t p, uint8_t dk[32]) {
  if (crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)pw, strlen(pw),
                                            salt, salt_len, n, (uint32_t)r,
                                            (uint32_t)p, dk, 32) != 0)
    return TEEX_ECRYPTO;
  return 0;
}

static void mac_of(const uint8_t dk[32], const uint8_t *ct, size_t n,
                   uint8_t mac[32]) {
  struct teex_keccak_ctx k;
  teex_keccak256_init(&k);
  teex_keccak256_update(&k, dk + 16, 16);
  teex_keccak256_update(&k, ct, n);
  teex_keccak256_final(&k, mac);
}

static int check_scrypt_params(uint64_t n, uint64_t r, uint64_t p) {
  if (n < 2 || (n & (n - 1)) || r == 0 || p == 0 || r > 1024 || p > 1024)
    return TEEX_EINVAL;
  if (n > TEEX_KEYSTORE_MAX_SCRYPT_MEM / 128 / r)
    return TEEX_ETOOBIG;
  return 0;
}

int teex_keystore_encrypt(const uint8_t sk[32], const char *password,
                          const struct teex_keystore_params *params,
                          char **json_out, struct teex_err *err) {
  uint8_t salt[32], iv[16], dk[32], ct[32], mac[32], pub[64], addr[20],
      uuid[16];
  char salt_h[65], iv_h[33], ct_h[65], mac_h[65], addr_h[41], id[37];
  json_t *doc = NULL;
  int rc;
  *json_out = NULL;
  if (!params)
    params = &teex_keystore_standard;
  if ((rc = check_scrypt_params(params->scrypt_n, params->scrypt_r,
                                params->scrypt_p)) != 0)
    return teex_err_set(err, rc, "keystore: bad scrypt parameters");
  if (teex_secp256k1_public(sk, pub) != 0)
    return teex_err_set(err, TEEX_EINVAL, "keystore: invalid private key");
  teex_eth_address(pub, addr);
  teex_random(salt, sizeof salt);
  teex_random(iv, sizeof iv);
  teex_random(uuid, sizeof uuid);
  uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* UUID v4 */
  uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
  if ((rc = scrypt(password, salt, sizeof salt, params->scrypt_n,
                   params->scrypt_r, params->scrypt_p, dk)) != 0) {
    teex_err_set(err, rc, "keystore: scrypt failed");
    goto done;
  }
  if ((rc = aes128ctr(dk, iv, sk, 32, ct)) != 0) {
    teex_err_set(err, rc, "keystore: encryption failed");
    goto done;
  }
  mac_of(dk, ct, 32, mac);
  teex_hex_encode(salt, 32, salt_h);
  teex_hex_encode(iv, 16, iv_h);
  teex_hex_encode(ct, 32, ct_h);
  teex_hex_encode(mac, 32, mac_h);
  teex_hex_encode(addr, 20, addr_h);
  {
    char u[33];
    teex_hex_encode(uuid, 16, u);
    snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", u, u + 8, u + 12,
             u + 16, u + 20);
  }
  doc = json_pack("{s:s,s:s,s:i,s:{s:s,s:s,s:{s:s},s:s,s:{s:i,s:I,s:i,s:i,s:s},"
                  "s:s}}",
                  "address", addr_h, "id", id, "version", 3, "crypto", "cipher",
                  "aes-128-ctr", "ciphertext", ct_h, "cipherparams", "iv", iv_h,
                  "kdf", "scrypt", "kdfparams", "dklen", 32, "n",
                  (json_int_t)params->scrypt_n, "r", (int)params->scrypt_r, "p",
                  (int)params->scrypt_p, "salt", salt_h, "mac", mac_h);
  if (!doc || !(*json_out = json_dumps(doc, JSON_INDENT(2)))) {
    rc = teex_err_set(err, TEEX_ENOMEM, "keystore: out of memory");
    goto done;
  }
  rc = 0;
done:
  json_decref(doc);
  teex_wipe(dk, sizeof dk);
  return rc;
}

/* Decodes a hex string field into exactly `want` bytes (want 0: any up to
 * max). */
static int hex_field(json_t *obj, const char *key, uint8_t *out, size_t max,
                     size_t want, size_t *got) {
  const char *s = json_string_value(json_object_get(obj, key));
  size_t n = 0;
  if (!s || teex_hex_decode(s, out, max, &n) != 0 || (want && n != want))
    return TEEX_EFORMAT;
  if (got)
    *got = n;
  return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t *out) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return TEEX_EFORMAT;
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

int teex_keystore_decrypt(const char *json, const char *password,
                          uint8_t sk[32], uint8_t addr[20],
                          struct teex_err *err) {
  json_t *doc = NULL, *cr, *kp;
  json_error_t je;
  uint8_t salt[128], iv[16], ct[32], mac[32], want_mac[32], dk[32], pub[64],
      a[20], file_addr[20];
  size_t salt_len = 0, n = strlen(json);
  const char *kdf, *cipher;
  int rc = TEEX_EFORMAT;
  if (n > TEEX_KEYSTORE_MAX_JSON)
    return teex_err_set(err, TEEX_ETOOBIG, "keystore: file too large");
  doc = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
  if (!doc)
    return teex_err_set(err, TEEX_EFORMAT, "keystore: bad JSON: %s", je.text);
  json_t *ver = json_object_get(doc, "version");
  if (!json_is_integer(ver) || json_integer_value(ver) != 3) {
    rc = teex_err_set(err, TEEX_EVERSION, "keystore: not a version 3 keystore");
    goto done;
  }
  cr = json_object_get(doc, "crypto");
  if (!cr)
    cr = json_object_get(doc, "Crypto");
  cipher = json_string_value(json_object_get(cr, "cipher"));
  kdf = json_string_value(json_object_get(cr, "kdf"));
  kp = json_object_get(cr, "kdfparams");
  if (!cipher || strcmp(cipher, "aes-128-ctr") != 0) {
    rc = teex_err_set(err, TEEX_EUNSUPPORTED, "keystore: cipher %s unsupported",
                      cipher ? cipher : "(none)");
    goto done;
  }
  if (!kdf || !json_is_object(kp) ||
      hex_field(cr, "ciphertext", ct, sizeof ct, 32, NULL) ||
      hex_field(json_object_get(cr, "cipherparams"), "iv", iv, 16, 16, NULL) ||
      hex_field(cr, "mac", mac, 32, 32, NULL) ||
      hex_field(kp, "salt", salt, sizeof salt, 0, &salt_len)) {
    rc = teex_err_set(err, TEEX_EFORMAT, "keystore: malformed crypto section");
    goto done;
  }
  uint64_t dklen = 0;
  if (get_uint(kp, "dklen", &dklen) || dklen != 32) {
    rc = teex_err_set(err, TEEX_EUNSUPPORTED, "keystore: dklen must be 32");
    goto done;
  }
  if (strcmp(kdf, "scrypt") == 0) {
    uint64_t sn, sr, sp;
    if (get_uint(kp, "n", &sn) || get_uint(kp, "r", &sr) ||
        get_uint(kp, "p", &sp)) {
      rc = teex_err_set(err, TEEX_EFORMAT, "keystore: malformed scrypt params");
      goto done;
    }
    if ((rc = check_scrypt_params(sn, sr, sp)) != 0) {
      teex_err_set(err, rc, "keystore: scrypt parameters out of bounds");
      goto done;
    }
    if ((rc = scrypt(password, salt, salt_len, sn, sr, sp, dk)) != 0) {
      teex_err_set(err, rc, "keystore: scrypt failed");
      goto done;
    }
  } else if (strcmp(kdf, "pbkdf2") == 0) {
    uint64_t c;
    const char *prf = json_string_value(json_object_get(kp, "prf"));
    if (get_uint(kp, "c", &c) || c == 0 || !prf ||
        strcmp(prf, "hmac-sha256") != 0) {
      rc = teex_err_set(err, TEEX_EUNSUPPORTED,
                        "keystore: pbkdf2 needs prf hmac-sha256 and c > 0");
      goto done;
    }
    if (c > TEEX_KEYSTORE_MAX_PBKDF2_ITER) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "keystore: pbkdf2 count too large");
      goto done;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                          (int)c, EVP_sha256(), 32, dk) != 1) {
      rc = teex_err_set(err, TEEX_ECRYPTO, "keystore: pbkdf2 failed");
      goto done;
    }
  } else {
    rc = teex_err_set(err, TEEX_EUNSUPPORTED, "keystore: kdf %s unsupported",
                      kdf);
    goto done;
  }
  mac_of(dk, ct, 32, want_mac);
  if (!teex_ct_equal(mac, want_mac, 32)) {
    rc = teex_err_set(err, TEEX_EAUTH,
                      "keystore: wrong password or corrupted file (MAC "
                      "mismatch)");
    goto done;
  }
  if ((rc = aes128ctr(dk, iv, ct, 32, sk)) != 0) {
    teex_err_set(err, rc, "keystore: decryption failed");
    goto done;
  }
  if (teex_secp256k1_public(sk, pub) != 0) {
    rc = teex_err_set(err, TEEX_EFORMAT, "keystore: key is not valid");
    goto done;
  }
  teex_eth_address(pub, a);
  json_t *fa = json_object_get(doc, "address");
  if (fa) {
    if (hex_field(doc, "address", file_addr, 20, 20, NULL) != 0 ||
        memcmp(file_addr, a, 20) != 0) {
      rc = teex_err_set(err, TEEX_EAUTH,
                        "keystore: key does not match the file's address");
      goto done;
    }
  }
  if (addr)
    memcpy(addr, a, 20);
  rc = 0;
done:
  if (rc != 0)
    teex_wipe(sk, 32);
  teex_wipe(dk, sizeof dk);
  json_decref(doc);
  return rc;
}
