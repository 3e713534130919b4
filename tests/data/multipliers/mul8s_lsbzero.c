/* A signed 8-bit multiplier in EvoApproxLib's convention: the exact product
   with its two least-significant bits cleared. */
#include <stdint.h>

int16_t mul8s_lsbzero(int8_t a, int8_t b)
{
    int16_t p = (int16_t)((int16_t)a * (int16_t)b);
    return (int16_t)(p & ~3);
}
