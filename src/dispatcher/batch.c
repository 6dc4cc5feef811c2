/* Batch ids: keccak256(abi.encode(dispatcher, sequence number)), as
 * settlement.md §4.1 recommends. (The batch content is encoded by the chain
 * module, teex_chain_batch_content_encode.) */
#include "teex/dispatcher.h"

#include "teex/crypto.h"

#include <string.h>

void teex_dispatcher_batch_id(const uint8_t dispatcher[20], uint64_t seq,
                              uint8_t out[32]) {
  uint8_t pre[64];
  memset(pre, 0, sizeof pre);
  memcpy(pre + 12, dispatcher, 20);
  for (int i = 0; i < 8; i++)
    pre[63 - i] = (uint8_t)(seq >> (8 * i));
  teex_keccak256(pre, sizeof pre, out);
}
