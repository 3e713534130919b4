// axc runtime: helpers shared by the C++ views of axc's multipliers.
// Generated multiplier functions include this text; HLS code may include the file.
#include <stdint.h>
#ifndef AXC_LOD_DEFINED
#define AXC_LOD_DEFINED
// position of the leading one of x > 0, else 0 (a fixed loop, as hardware does it)
static inline int64_t axc_lod(int64_t x) {
    int64_t r = 0;
    for (int i = 0; i < 62; ++i)
        if ((x >> i) & 1) r = i;
    return x > 0 ? r : 0;
}
#endif
