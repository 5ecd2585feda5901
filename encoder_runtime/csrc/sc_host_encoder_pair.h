/* sc_host_encoder_pair.h: instantiates sc_host_encoder_kernel.h for one vector width twice, with
 * float32 accumulators (used when every partial sum is exact, |acc| < 2**24) and with float64 ones.
 * Define before including: SC_VB (vector bytes), SC_TGT (target attribute, or nothing) and the name
 * suffixes SC_SF / SC_SD of the float32 / float64 kernels; all four are undefined afterwards.
 * No include guard: included once per width. */
#define SC_T float
#define SC_I int32_t
#define SC_MAGIC 12582912.0
#define SC_FN(x) SC_CAT(x, SC_SF)
#include "sc_host_encoder_kernel.h"
#undef SC_FN
#undef SC_T
#undef SC_I
#undef SC_MAGIC
#define SC_T double
#define SC_I int64_t
#define SC_MAGIC 6755399441055744.0
#define SC_FN(x) SC_CAT(x, SC_SD)
#include "sc_host_encoder_kernel.h"
#undef SC_FN
#undef SC_T
#undef SC_I
#undef SC_MAGIC
#undef SC_VB
#undef SC_TGT
#undef SC_SF
#undef SC_SD
