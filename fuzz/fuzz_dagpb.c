/* libFuzzer harness: the dag-pb/UnixFS node decoder, then the DAG walker on
 * the input as the root block of an in-memory backend (children are absent,
 * so the walk must end in a clean error or a correct, bounded file). */
#include "teex/ipfs.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct one_block {
  struct teex_ipfs_backend base;
  struct teex_cid cid;
  const uint8_t *data;
  size_t size;
};

static int ob_get(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                  struct teex_buf *out, struct teex_err *err) {
  struct one_block *ob = (struct one_block *)b;
  if (!teex_cid_equal(cid, &ob->cid))
    return teex_err_set(err, TEEX_ENOTFOUND, "absent");
  return teex_buf_append(out, ob->data, ob->size);
}

static const struct teex_ipfs_backend_ops ob_ops = {
    .version = 1, .name = "fuzz", .get_block = ob_get};

static int discard(void *ctx, const uint8_t *p, size_t n) {
  (void)p;
  *(size_t *)ctx += n;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_dagpb_node *node = malloc(sizeof *node);
  struct teex_err err;
  if (node == NULL)
    return 0;
  if (teex_dagpb_decode(data, size, node, &err) == 0) {
    if (node->n_links > TEEX_DAGPB_MAX_LINKS ||
        node->n_blocksizes > TEEX_DAGPB_MAX_LINKS)
      abort();
    if (node->data_len > 0 &&
        (node->data < data || node->data + node->data_len > data + size))
      abort();
    for (size_t i = 0; i < node->n_links; i++)
      if (node->links[i].name_len > 0 &&
          (node->links[i].name < data ||
           node->links[i].name + node->links[i].name_len > data + size))
        abort();
  }
  free(node);

  struct one_block ob = {{&ob_ops}, {0, {0}}, data, size};
  teex_cid_of_block(TEEX_CODEC_DAG_PB, data, size, &ob.cid);
  size_t written = 0;
  int rc = teex_ipfs_cat(&ob.base, &ob.cid, 1u << 20, discard, &written, &err);
  /* Only a node with no links can succeed, and then it wrote its data. */
  if (rc == 0 && written > size)
    abort();
  return 0;
}
