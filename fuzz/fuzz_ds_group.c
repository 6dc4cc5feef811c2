/* libFuzzer harness for the TEE-DS group config parser (src/ds/group.c):
 * arbitrary text either parses into a group within its limits — which
 * saves and parses back to the same group — or is refused cleanly. */
#include "ds/group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct teex_ds_group g, g2;
  struct teex_err err;
  if (teex_ds_group_parse(&g, (const char *)data, size, &err) != 0)
    return 0;
  if (g.n_members == 0 || g.n_members > TEEX_DS_GROUP_MAX_MEMBERS ||
      g.n_clients > TEEX_DS_GROUP_MAX_CLIENTS)
    abort();
  char path[] = "/tmp/fuzz_ds_group_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return 0;
  close(fd);
  if (teex_ds_group_save(&g, path, &err) != 0 ||
      teex_ds_group_load(&g2, path, &err) != 0)
    abort();
  unlink(path);
  if (memcmp(g.id, g2.id, 16) != 0 || g.n_members != g2.n_members ||
      g.n_clients != g2.n_clients || g.n_enclaves != g2.n_enclaves)
    abort();
  for (size_t i = 0; i < g.n_enclaves; i++)
    if (strcmp(g.enclaves[i].label, g2.enclaves[i].label) != 0 ||
        strcmp(g.enclaves[i].ns, g2.enclaves[i].ns) != 0)
      abort();
  for (size_t i = 0; i < g.n_members; i++)
    if (g.members[i].id != g2.members[i].id ||
        strcmp(g.members[i].peer, g2.members[i].peer) != 0 ||
        strcmp(g.members[i].client, g2.members[i].client) != 0)
      abort();
  for (size_t i = 0; i < g.n_clients; i++)
    if (strcmp(g.clients[i].ns, g2.clients[i].ns) != 0 ||
        memcmp(g.clients[i].spki, g2.clients[i].spki, 32) != 0)
      abort();
  return 0;
}
