#include "teex/version.h"

const char *teex_version(void) {
  return TEEX_VERSION;
}
