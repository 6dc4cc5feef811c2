/* Strict decoder for dag-pb blocks (PBNode/PBLink) and the UnixFS Data
 * message they carry. The block comes from an untrusted node: every length
 * is checked against what is left, every field against the schema, and the
 * canonical order (Links before Data, fields by number) is required. */
#include "ipfs/ipfs_internal.h"

#include <string.h>

/* A protobuf field header: number and wire type. */
static int read_tag(const uint8_t *p, size_t len, size_t *pos, uint64_t *field,
                    unsigned *wire) {
  uint64_t tag;
  if (ipfs_varint_get(p, len, pos, &tag) != 0)
    return TEEX_EFORMAT;
  *field = tag >> 3;
  *wire = (unsigned)(tag & 7);
  return 0;
}

/* A length-delimited payload: start and n inside p, pos moved past it. */
static int read_bytes(const uint8_t *p, size_t len, size_t *pos,
                      const uint8_t **start, size_t *n) {
  uint64_t l;
  if (ipfs_varint_get(p, len, pos, &l) != 0)
    return TEEX_EFORMAT;
  if (l > len - *pos)
    return TEEX_ETRUNC;
  *start = p + *pos;
  *n = (size_t)l;
  *pos += (size_t)l;
  return 0;
}

static int decode_link(const uint8_t *p, size_t len, struct teex_dagpb_link *l,
                       struct teex_err *err) {
  size_t pos = 0;
  uint64_t last = 0;
  int has_hash = 0;
  memset(l, 0, sizeof *l);
  while (pos < len) {
    uint64_t field;
    unsigned wire;
    if (read_tag(p, len, &pos, &field, &wire) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "PBLink: bad field tag");
    if (field <= last)
      return teex_err_set(err, TEEX_EFORMAT,
                          "PBLink: field %llu out of order or repeated",
                          (unsigned long long)field);
    last = field;
    if (field == 1 || field == 2) {
      const uint8_t *b;
      size_t n;
      if (wire != 2)
        return teex_err_set(err, TEEX_EFORMAT, "PBLink: wrong wire type");
      if (read_bytes(p, len, &pos, &b, &n) != 0)
        return teex_err_set(err, TEEX_EFORMAT, "PBLink: truncated field");
      if (field == 1) {
        int rc = teex_cid_from_bytes(b, n, &l->cid, err);
        if (rc != 0)
          return teex_err_wrap(err, rc, "PBLink Hash");
        has_hash = 1;
      } else {
        l->name = b;
        l->name_len = n;
      }
    } else if (field == 3) {
      if (wire != 0)
        return teex_err_set(err, TEEX_EFORMAT, "PBLink: wrong wire type");
      if (ipfs_varint_get(p, len, &pos, &l->tsize) != 0)
        return teex_err_set(err, TEEX_EFORMAT, "PBLink: bad Tsize");
      l->has_tsize = 1;
    } else {
      return teex_err_set(err, TEEX_EFORMAT, "PBLink: unknown field %llu",
                          (unsigned long long)field);
    }
  }
  if (!has_hash)
    return teex_err_set(err, TEEX_EFORMAT, "PBLink: no Hash");
  return 0;
}

static int decode_unixfs(const uint8_t *p, size_t len,
                         struct teex_dagpb_node *out, struct teex_err *err) {
  size_t pos = 0;
  uint64_t last = 0;
  int has_type = 0;
  while (pos < len) {
    uint64_t field, v;
    unsigned wire;
    if (read_tag(p, len, &pos, &field, &wire) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "UnixFS: bad field tag");
    /* Only blocksizes (4) repeats; everything else appears at most once. */
    if (field < last || (field == last && field != 4))
      return teex_err_set(err, TEEX_EFORMAT,
                          "UnixFS: field %llu out of order or repeated",
                          (unsigned long long)field);
    last = field;
    switch (field) {
    case 1: /* Type */
    case 3: /* filesize */
    case 4: /* blocksizes */
    case 5: /* hashType */
    case 6: /* fanout */
    case 7: /* mode */
      if (wire != 0)
        return teex_err_set(err, TEEX_EFORMAT,
                            "UnixFS: field %llu has wrong wire type",
                            (unsigned long long)field);
      if (ipfs_varint_get(p, len, &pos, &v) != 0)
        return teex_err_set(err, TEEX_EFORMAT, "UnixFS: bad varint");
      if (field == 1) {
        if (v > 5)
          return teex_err_set(err, TEEX_EFORMAT, "UnixFS: unknown Type %llu",
                              (unsigned long long)v);
        out->unixfs_type = (int)v;
        has_type = 1;
      } else if (field == 3) {
        out->filesize = v;
        out->has_filesize = 1;
      } else if (field == 4) {
        if (out->n_blocksizes >= TEEX_DAGPB_MAX_LINKS)
          return teex_err_set(err, TEEX_ETOOBIG,
                              "UnixFS: more than %u blocksizes",
                              (unsigned)TEEX_DAGPB_MAX_LINKS);
        out->blocksizes[out->n_blocksizes++] = v;
      }
      break;
    case 2: /* Data */
    case 8: /* mtime */
    {
      const uint8_t *b;
      size_t n;
      if (wire != 2)
        return teex_err_set(err, TEEX_EFORMAT,
                            "UnixFS: field %llu has wrong wire type",
                            (unsigned long long)field);
      if (read_bytes(p, len, &pos, &b, &n) != 0)
        return teex_err_set(err, TEEX_EFORMAT, "UnixFS: truncated field");
      if (field == 2) {
        out->data = b;
        out->data_len = n;
      }
      break;
    }
    default:
      return teex_err_set(err, TEEX_EFORMAT, "UnixFS: unknown field %llu",
                          (unsigned long long)field);
    }
  }
  if (!has_type)
    return teex_err_set(err, TEEX_EFORMAT, "UnixFS: no Type");
  return 0;
}

int teex_dagpb_decode(const uint8_t *p, size_t len, struct teex_dagpb_node *out,
                      struct teex_err *err) {
  size_t pos = 0;
  out->n_links = 0;
  out->has_data = 0;
  out->unixfs_type = -1;
  out->data = NULL;
  out->data_len = 0;
  out->filesize = 0;
  out->has_filesize = 0;
  out->n_blocksizes = 0;
  if (len > TEEX_IPFS_MAX_BLOCK)
    return teex_err_set(err, TEEX_ETOOBIG, "dag-pb: block of %zu bytes", len);
  while (pos < len) {
    uint64_t field;
    unsigned wire;
    const uint8_t *b;
    size_t n;
    if (read_tag(p, len, &pos, &field, &wire) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "PBNode: bad field tag");
    if (wire != 2 || (field != 1 && field != 2))
      return teex_err_set(err, TEEX_EFORMAT,
                          "PBNode: unknown field %llu (wire type %u)",
                          (unsigned long long)field, wire);
    if (out->has_data)
      return teex_err_set(err, TEEX_EFORMAT,
                          "PBNode: field after Data (not canonical dag-pb)");
    if (read_bytes(p, len, &pos, &b, &n) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "PBNode: truncated field");
    if (field == 2) {
      if (out->n_links >= TEEX_DAGPB_MAX_LINKS)
        return teex_err_set(err, TEEX_ETOOBIG, "PBNode: more than %u links",
                            (unsigned)TEEX_DAGPB_MAX_LINKS);
      int rc = decode_link(b, n, &out->links[out->n_links], err);
      if (rc != 0)
        return teex_err_wrap(err, rc, "link %zu", out->n_links);
      out->n_links++;
    } else {
      out->has_data = 1;
      int rc = decode_unixfs(b, n, out, err);
      if (rc != 0)
        return rc;
    }
  }
  if (!out->has_data)
    return teex_err_set(err, TEEX_EFORMAT,
                        "dag-pb node carries no UnixFS Data");
  return 0;
}
