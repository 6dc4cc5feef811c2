/* libFuzzer harness: the configuration file parser. */
#include "teex/config.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_config c;
  struct teex_err err;
  teex_config_init(&c);
  if (teex_config_parse(&c, (const char *)data, size, &err) == 0) {
    for (size_t i = 0; i < c.count; i++) {
      uint64_t v;
      int b;
      (void)teex_config_get_u64(&c, c.entries[i].key, 0, &v, &err);
      (void)teex_config_get_bool(&c, c.entries[i].key, 0, &b, &err);
    }
  }
  teex_config_free(&c);
  return 0;
}
