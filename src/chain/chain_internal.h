/* Internal to the chain module and its tests: the fixed ABI signatures the
 * bindings encode, so a test can check them against the compiled ABI. */
#ifndef TEEX_CHAIN_INTERNAL_H
#define TEEX_CHAIN_INTERNAL_H

/* NULL-terminated, static. */
const char *const *teex_chain__function_sigs(void);
const char *const *teex_chain__event_sigs(void);

/* Folds one ServiceRegistry log into the catalogue *v (n entries, cap
 * allocated; *v owned by the caller, free()). Logs of other events are
 * skipped. What teex_chain_catalogue does per log; exposed for the fuzzer. */
#include "teex/chain.h"
int teex_chain__apply_log(const struct teex_eth_log *lg,
                          struct teex_chain_service **v, size_t *n, size_t *cap,
                          struct teex_err *err);

#endif
