/* libFuzzer harness: the image archive parser (and the manifest parser it
 * calls). A parsed image must re-encode to exactly the input bytes: the
 * format has one encoding per image. */
#include "teex/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct teex_image *img = NULL;
  struct teex_err err;
  if (teex_image_parse(data, size, &img, &err) != 0) {
    if (img != NULL)
      abort(); /* a failed parse returns nothing */
    return 0;
  }
  for (size_t i = 0; i < img->nfiles; i++)
    if (teex_image_find(img, img->files[i].path) != &img->files[i])
      abort();
  uint8_t *again = NULL;
  size_t len = 0;
  if (teex_image_encode(img, &again, &len, &err) != 0 || len != size ||
      memcmp(again, data, size) != 0)
    abort();
  teex_image_bytes_free(again, len);
  teex_image_free(img);
  return 0;
}
