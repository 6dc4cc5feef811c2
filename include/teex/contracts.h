/* The teex contracts (contracts/ *.sol) as compiled at build time by the
 * pinned solc-js: each contract's creation bytecode and ABI JSON, carried in
 * the teex binary so it can deploy them without any tool at run time. The
 * data is generated (contracts/build.mjs); it lives for the whole program. */
#ifndef TEEX_CONTRACTS_H
#define TEEX_CONTRACTS_H

#include <stddef.h>
#include <stdint.h>

struct teex_contract_artifact {
  const char *name; /* "ServiceRegistry", "EnclaveRegistry", "Settlement" */
  const unsigned char
      *bytecode; /* creation code, without constructor arguments */
  size_t bytecode_len;
  const char *abi_json; /* the ABI as JSON, NUL-terminated */
};

/* "solc <version> evm <evmVersion>": what produced the artifacts. */
extern const char teex_contracts_compiler[];

/* Number of artifacts, and the i-th (NULL when i is out of range), sorted by
 * name. Static data: never freed. */
size_t teex_contracts_count(void);
const struct teex_contract_artifact *teex_contract_at(size_t i);

/* The artifact of contract `name`, or NULL if there is none. */
const struct teex_contract_artifact *teex_contract_find(const char *name);

#endif
