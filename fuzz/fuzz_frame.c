/* libFuzzer harness for the frame reader (include/teex/frame.h): arbitrary
 * bytes, fed in pieces whose sizes the input chooses, must yield frames no
 * larger than the limit, whose bytes are exactly the input's, or a clean
 * error — never a crash, an overread or unbounded memory. */
#include "teex/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  /* First byte: piece size (1..256) and a small limit or the default one. */
  size_t piece = (size_t)(data[0] & 0x7f) + 1;
  size_t max = (data[0] & 0x80) ? 64 : 0;
  data++;
  size--;
  struct teex_frame_reader r;
  struct teex_err err;
  teex_frame_reader_init(&r, max);
  size_t off = 0, total = 0;
  int dead = 0;
  while (off < size && !dead) {
    size_t n = size - off < piece ? size - off : piece;
    const uint8_t *in = data + off;
    size_t in_len = n;
    while (in_len > 0) {
      const uint8_t *frame;
      size_t flen;
      int rc = teex_frame_reader_next(&r, &in, &in_len, &frame, &flen, &err);
      if (rc < 0) {
        dead = 1;
        break;
      }
      if (rc == 0)
        break;
      if (flen == 0 || flen > r.max_payload)
        abort();
      /* The payload must be the input bytes right after its header. */
      if (memcmp(frame, data + total + TEEX_FRAME_HEADER_SIZE, flen) != 0)
        abort();
      total += TEEX_FRAME_HEADER_SIZE + flen;
    }
    off += n;
  }
  teex_frame_reader_free(&r);
  return 0;
}
