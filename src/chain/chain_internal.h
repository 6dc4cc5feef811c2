/* Internal to the chain module and its tests: the fixed ABI signatures the
 * bindings encode, so a test can check them against the compiled ABI. */
#ifndef TEEX_CHAIN_INTERNAL_H
#define TEEX_CHAIN_INTERNAL_H

/* NULL-terminated, static. */
const char *const *teex_chain__function_sigs(void);
const char *const *teex_chain__event_sigs(void);

#endif
