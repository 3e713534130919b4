/* An 8-bit unsigned multiplier in EvoApproxLib's C convention: the partial
   products of the five least-significant columns are dropped. */
#include <stdint.h>

uint16_t mul8u_trunc5(uint8_t a, uint8_t b)
{
    uint16_t sum = 0;
    for (int i = 0; i < 8; i++) {
        if ((a >> i) & 1) {
            uint16_t row = (uint16_t)((uint16_t)b << i);
            sum += (uint16_t)(row & 0xFFE0);
        }
    }
    return sum;
}
