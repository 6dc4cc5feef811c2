/* Accounts on the client side: secp256k1 keys of users and providers kept as
 * Web3 Secret Storage (v3) keystore files in DATA_DIR/keystore/, named as
 * geth names them, so they move to and from geth, ethers and wallets.
 * Passwords come from a file or the environment, never from the command
 * line (which other users can read in /proc). */
#ifndef TEEX_WALLET_H
#define TEEX_WALLET_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"
#include "teex/keystore.h"

#define TEEX_WALLET_MAX_ACCOUNTS 1024

/* Creates a new key, stores it under password in dir (created 0700, file
 * 0600) and returns its address. params NULL: geth's standard scrypt. */
int teex_wallet_create(const char *dir, const char *password,
                       const struct teex_keystore_params *params,
                       uint8_t addr[20], struct teex_err *err);

/* Stores an existing private key. TEEX_EEXIST when the address is there. */
int teex_wallet_import_key(const char *dir, const uint8_t sk[32],
                           const char *password,
                           const struct teex_keystore_params *params,
                           uint8_t addr[20], struct teex_err *err);

/* Stores a keystore JSON document as is (after checking password opens it). */
int teex_wallet_import_json(const char *dir, const char *json,
                            const char *password, uint8_t addr[20],
                            struct teex_err *err);

/* Lists the addresses in dir (at most max, sorted). Returns the count or a
 * negative code. A missing dir is an empty list. */
int teex_wallet_list(const char *dir, uint8_t (*addrs)[20], size_t max,
                     struct teex_err *err);

/* Reads the keystore JSON of addr (malloc'd, NUL-terminated). */
int teex_wallet_read(const char *dir, const uint8_t addr[20], char **json,
                     struct teex_err *err);

/* Decrypts addr's key into sk (the caller wipes it). TEEX_EAUTH for a wrong
 * password, TEEX_ENOTFOUND for an unknown address. */
int teex_wallet_unlock(const char *dir, const uint8_t addr[20],
                       const char *password, uint8_t sk[32],
                       struct teex_err *err);

/* Reads a password: the first line of file when given, else the
 * TEEX_PASSWORD environment variable. TEEX_EINVAL when neither is set. */
int teex_wallet_password(const char *file, char *out, size_t out_size,
                         struct teex_err *err);

#endif
