/* sc_rans: static context-classed rANS coder for int8 latent codes (format 2).
 *
 * Symbols. Every code v is coded as the zigzag byte z = 2y (y >= 0) or -2y - 1 (y < 0) of its
 * value y: y = v, or in a channel with the predictor flag y = v - (the code on its left, 0 in
 * column 0) wrapped to int8. z is coded with a static frequency table chosen by a context class
 * of already-coded neighbours:
 *   s = |y_L| + |y_T|, L = the code to the left in the row (0 in column 0), T = the code above
 *   (grids with rows > 1; 0 on row 0) or, for 1-D signals (rows == 1), the previous
 *   channel's code at the same position (0 for channel 0), each with its own channel's y;
 *   k6 = 0, 1, 2, 3, 3, 4, 4, 4, 5 for s = 0 .. 8 and 5 above;
 *   the class k is k6 merged by the scheme: 1 class (all 0), 2 (k6 > 0), 3 (0 | 1-2 | 3-5)
 *   or 6 (k6 itself).
 * Payload: byte 0 = 2; byte 1 = config: bits 0-1 = scheme (1, 2, 3, 6 classes), bit 2 = one
 * table set per channel (else one shared by all channels), bit 3 = predictor flags follow,
 * other bits 0. With bit 3: ceil(C / 8) bytes, channel c's flag = bit c % 8 of byte c / 8
 * (higher bits of the last byte 0); the encoder sets it for a channel of a 2-D grid whose
 * per-channel tables come out smaller with it (never for 1-D signals). Then the tables,
 * group by group (channel 0.. or the one shared group), class by class: a byte zmax and the
 * frequencies of z = 0 .. zmax as LEB128 varints (1 or 2 bytes, each <= 4095); the others are
 * 0. A table sums to 4096 (12-bit probabilities), or to 0 when its class never occurs (then
 * it must not be used). Then 4 rANS states (32-bit little endian, each in [2^23, 2^31)) and
 * the renormalisation bytes.
 * rANS: 4 interleaved states, code i (channel-major order) uses state i mod 4; decoding a
 * symbol from state x: slot = x mod 4096, z = the symbol with cum(z) <= slot < cum(z) + f(z)
 * (cum = sum of the frequencies of smaller z), x = f(z) (x >> 12) + slot - cum(z), then while
 * x < 2^23: x = (x << 8) | the next byte. After the last code every state is 2^23 and every
 * byte has been read. The encoder picks the (scheme, per-channel) pair with the smallest
 * estimated size (integer arithmetic only, so every platform writes the same bytes) and
 * stores the raw codes (byte 0 = 0) when coding would not be smaller.
 */
#include "sc_rans.h"

#include <string.h>

#define PROB_BITS 12u
#define PROB_M (1u << PROB_BITS)
#define RANS_L (1u << 23)
#define NLANE 4u
#define NK6 6u
#define NSCHEME 4u
#define NSYM 256u

static const uint8_t k_nclass[NSCHEME] = {1, 2, 3, 6};
static const uint8_t k_merge[NSCHEME][NK6] = {
    {0, 0, 0, 0, 0, 0}, {0, 1, 1, 1, 1, 1}, {0, 1, 1, 2, 2, 2}, {0, 1, 2, 3, 4, 5}};
static const uint8_t k_k6[9] = {0, 1, 2, 3, 3, 4, 4, 4, 5};

static inline unsigned iabs8(int v) { return (unsigned)(v < 0 ? -v : v); }
static inline unsigned zig(int v) { return v < 0 ? (unsigned)(-2 * v - 1) : (unsigned)(2 * v); }
static int unzig(unsigned z) { return (z & 1u) ? -(int)((z + 1u) >> 1) : (int)(z >> 1); }
static inline unsigned k6_of(unsigned s) { return k_k6[s > 8u ? 8u : s]; }

/* The coded value y of column x of a row: the code, or with pred its difference to the code on
 * its left (0 in column 0) wrapped to int8. */
static inline int wrap8(int d) { return (int)((unsigned)(d + 384) & 255u) - 128; } /* d in -255..255 */

static inline int yv(const int8_t *row, uint32_t x, unsigned pred)
{
    return pred && x ? wrap8(row[x] - row[x - 1]) : row[x];
}

/* Neighbour sum s of column x: |y| on the left (0 in column 0) + |y| of the T row (row above,
 * previous channel's row or NULL); pc, pt = predictor flags of the row's and T row's channel. */
static unsigned ctx_s(const int8_t *cur, const int8_t *trow, uint32_t x, unsigned pc, unsigned pt)
{
    return (x ? iabs8(yv(cur, x - 1, pc)) : 0u) + (trow ? iabs8(yv(trow, x, pt)) : 0u);
}

/* off[s] = (class of neighbour sum s) * unit for s = 0 .. 256 under a scheme */
static void class_offsets(unsigned scheme, uint32_t unit, uint32_t *off)
{
    unsigned s;
    for (s = 0; s <= 256u; s++) off[s] = k_merge[scheme][k6_of(s)] * unit;
}

static size_t mul_or_0(size_t a, size_t b) { return b && a > (size_t)-1 / b ? 0 : a * b; }

/* encoder work: hist[C + 2][6][256] u32 (row C: all channels, row C + 1: scratch),
 * enc[C][6][256] u32 (freq | cum << 16), pred[C] u8 */
#define ENC_EXTRA (2u * NK6 * NSYM * 4u)
static size_t enc2_work(uint32_t channels)
{
    size_t t = mul_or_0((size_t)channels, NK6 * NSYM * 8u + 1u);
    return t && t <= (size_t)-1 - ENC_EXTRA ? t + ENC_EXTRA : 0;
}

#define DEC_EXTRA (NK6 * (PROB_M + NSYM * 2u)) /* sym[6][4096] u8, cum[6][256] u16 */

/* decoder work: freq[C][6][256] u16, then DEC_EXTRA */
static size_t dec2_work(uint32_t channels)
{
    size_t t = mul_or_0((size_t)channels, NK6 * NSYM * 2u);
    return t && t <= (size_t)-1 - DEC_EXTRA ? t + DEC_EXTRA : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* encoder */

static const uint16_t k_log2[256] = { /* log2(f) x 256 for f = 1 .. 256 (8 squarings) */
    0, 256, 405, 512, 594, 661, 718, 768, 811, 850, 885, 917, 947, 974, 1000, 1024,
    1046, 1067, 1087, 1106, 1124, 1141, 1158, 1173, 1188, 1203, 1217, 1230, 1243, 1256, 1268, 1280,
    1291, 1302, 1313, 1323, 1333, 1343, 1353, 1362, 1371, 1380, 1389, 1397, 1405, 1414, 1421, 1429,
    1437, 1444, 1452, 1459, 1466, 1473, 1480, 1486, 1493, 1499, 1505, 1512, 1518, 1524, 1530, 1536,
    1541, 1547, 1552, 1558, 1563, 1569, 1574, 1579, 1584, 1589, 1594, 1599, 1604, 1609, 1613, 1618,
    1623, 1627, 1632, 1636, 1640, 1645, 1649, 1653, 1657, 1661, 1665, 1670, 1674, 1677, 1681, 1685,
    1689, 1693, 1697, 1700, 1704, 1708, 1711, 1715, 1718, 1722, 1725, 1729, 1732, 1736, 1739, 1742,
    1745, 1749, 1752, 1755, 1758, 1761, 1765, 1768, 1771, 1774, 1777, 1780, 1783, 1786, 1789, 1792,
    1794, 1797, 1800, 1803, 1806, 1808, 1811, 1814, 1817, 1819, 1822, 1825, 1827, 1830, 1832, 1835,
    1838, 1840, 1843, 1845, 1848, 1850, 1853, 1855, 1857, 1860, 1862, 1865, 1867, 1869, 1872, 1874,
    1876, 1879, 1881, 1883, 1885, 1888, 1890, 1892, 1894, 1896, 1898, 1901, 1903, 1905, 1907, 1909,
    1911, 1913, 1915, 1917, 1919, 1921, 1924, 1926, 1928, 1930, 1932, 1933, 1935, 1937, 1939, 1941,
    1943, 1945, 1947, 1949, 1951, 1953, 1954, 1956, 1958, 1960, 1962, 1964, 1965, 1967, 1969, 1971,
    1973, 1974, 1976, 1978, 1980, 1981, 1983, 1985, 1986, 1988, 1990, 1992, 1993, 1995, 1997, 1998,
    2000, 2001, 2003, 2005, 2006, 2008, 2010, 2011, 2013, 2014, 2016, 2017, 2019, 2021, 2022, 2024,
    2025, 2027, 2028, 2030, 2031, 2033, 2034, 2036, 2037, 2039, 2040, 2042, 2043, 2045, 2046, 2048};

/* log2(f) x 256 for f = 1 .. 4095 from the 256-entry table (f's top 8 bits; estimate only) */
static unsigned log2_q8(unsigned f)
{
    unsigned sh = 0;
    while ((f >> sh) > 256u) sh++;
    return k_log2[(f >> sh) - 1] + (sh << 8);
}

static int quantise(const uint32_t *cnt, uint32_t zlim, uint16_t *freq)
{
    uint64_t total = 0;
    uint32_t sum = 0, nused = 0, z, am = 0;
    int zmax = -1;
    for (z = 0; z < zlim; z++) total += cnt[z];
    memset(freq, 0, (zlim < NSYM ? zlim + 1u : NSYM) * sizeof *freq); /* the rest stays 0 */
    if (total == 0) return -1;
    for (z = 0; z < zlim; z++) {
        uint64_t f;
        if (!cnt[z]) continue;
        f = ((uint64_t)cnt[z] * PROB_M + total / 2) / total;
        if (f < 1) f = 1;
        if (f > PROB_M - 1) f = PROB_M - 1;
        freq[z] = (uint16_t)f;
        sum += (uint32_t)f;
        nused++;
        zmax = (int)z;
        if (f > freq[am]) am = z;
    }
    if (nused == 1) { /* one symbol: 4095 for it, 1 for a neighbour that never occurs */
        freq[am] = PROB_M - 1;
        if (am < NSYM - 1) { freq[am + 1] = 1; zmax = (int)am + 1; }
        else freq[am - 1] = 1;
        return zmax;
    }
    while (sum != PROB_M) { /* move the rounding error onto the largest frequencies */
        for (z = 0; z < zlim; z++) if (freq[z] > freq[am]) am = z;
        if (sum < PROB_M) { freq[am] = (uint16_t)(freq[am] + (PROB_M - sum)); sum = PROB_M; }
        else {
            uint32_t take = sum - PROB_M;
            if (take > freq[am] - 1u) take = freq[am] - 1u;
            freq[am] = (uint16_t)(freq[am] - take);
            sum -= take;
            am = 0;
            for (z = 0; z < zlim; z++) if (freq[z] > freq[am]) am = z;
            if (sum != PROB_M && freq[am] == 1) return -2; /* cannot happen: <= 256 symbols */
        }
    }
    return zmax;
}

static unsigned table_bytes(const uint16_t *freq, int zmax)
{
    unsigned b = 1;
    int z;
    for (z = 0; z <= (zmax < 0 ? 0 : zmax); z++) b += freq[z] < 128u ? 1u : 2u;
    return b;
}

/* Counts (z < zlim) of table (group g, class k) of a scheme; per_ch: group = channel g, else
 * all channels (the histogram's row C). */
static void gather(const uint32_t *hist, uint32_t channels, unsigned scheme, int per_ch,
                   uint32_t g, unsigned k, uint32_t zlim, uint32_t *cnt)
{
    const uint32_t *h = hist + (size_t)(per_ch ? g : channels) * NK6 * NSYM;
    unsigned k6, z;
    memset(cnt, 0, zlim * sizeof *cnt);
    for (k6 = 0; k6 < NK6; k6++)
        if (k_merge[scheme][k6] == k)
            for (z = 0; z < zlim; z++) cnt[z] += h[k6 * NSYM + z];
}

/* Estimated payload bits x 256 of a configuration. */
static uint64_t config_cost(const uint32_t *hist, uint32_t channels, unsigned scheme, int per_ch,
                            uint32_t zlim)
{
    uint32_t cnt[NSYM], g, ngroups = per_ch ? channels : 1;
    uint16_t freq[NSYM] = {0};
    uint64_t bits = 0;
    unsigned k, z;
    for (g = 0; g < ngroups; g++)
        for (k = 0; k < k_nclass[scheme]; k++) {
            int zmax;
            gather(hist, channels, scheme, per_ch, g, k, zlim, cnt);
            zmax = quantise(cnt, zlim, freq);
            bits += (uint64_t)table_bytes(freq, zmax) * 8u * 256u;
            for (z = 0; zmax >= 0 && z <= (unsigned)zmax && z < zlim; z++)
                if (cnt[z]) bits += (uint64_t)cnt[z] * (PROB_BITS * 256u - log2_q8(freq[z]));
        }
    return bits;
}

/* A bound 2^k <= 256 above every z whose OR is zor (so counts of z >= it are 0). */
static uint32_t zbound(unsigned zor)
{
    uint32_t b = 1;
    while (b <= zor) b *= 2u;
    return b > NSYM ? NSYM : b;
}

/* Adds one row's codes to the 6-class histogram h; returns the OR of their z. */
static unsigned hist_row(uint32_t *h, const int8_t *cur, const int8_t *trow, uint32_t cols,
                         unsigned pc, unsigned pt, const uint32_t *off)
{
    unsigned zor = 0, l = 0;
    uint32_t x;
    if (!pc && !pt) { /* the plain codes (most rows): no differences to take */
        for (x = 0; x < cols; x++) {
            const int v = cur[x];
            const unsigned z = zig(v);
            h[off[l + (trow ? iabs8(trow[x]) : 0u)] + z]++;
            zor |= z;
            l = iabs8(v);
        }
        return zor;
    }
    if (pc && pt) { /* left differences of this row and of the T row, carried along */
        int cp = 0, tp = 0;
        for (x = 0; x < cols; x++) {
            const int v = cur[x], y = wrap8(v - cp);
            const unsigned z = zig(y);
            unsigned t = 0;
            if (trow) { t = iabs8(wrap8(trow[x] - tp)); tp = trow[x]; }
            h[off[l + t] + z]++;
            zor |= z;
            l = iabs8(y);
            cp = v;
        }
        return zor;
    }
    for (x = 0; x < cols; x++) {
        const int y = yv(cur, x, pc);
        const unsigned z = zig(y);
        h[off[l + (trow ? iabs8(yv(trow, x, pt)) : 0u)] + z]++;
        zor |= z;
        l = iabs8(y);
    }
    return zor;
}

/* 6-class histograms per channel and (row C) of all channels, choosing each channel's
 * predictor (2-D grids: left difference when its per-channel tables come out smaller; 1-D
 * signals: none); returns 1 + a bound on the largest z. */
static uint32_t histogram(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                          uint32_t *hist, uint8_t *pred)
{
    const size_t plane = (size_t)rows * cols, hsz = NK6 * NSYM;
    uint32_t zlim, zor = 0, *all = hist + (size_t)channels * hsz, *alt = all + hsz, i;
    uint32_t ch, r, x, off[257];
    class_offsets(NSCHEME - 1, NSYM, off); /* the 6 classes */
    memset(hist, 0, ((size_t)channels + 1) * hsz * sizeof *hist);
    for (ch = 0; ch < channels; ch++) {
        uint32_t *h = hist + (size_t)ch * hsz;
        unsigned zo = 0, za = 0;
        pred[ch] = 0;
        for (r = 0; r < rows; r++) {
            const int8_t *cur = codes + ch * plane + (size_t)r * cols;
            const int8_t *trow = rows > 1 ? (r ? cur - cols : NULL) : (ch ? cur - plane : NULL);
            zo |= hist_row(h, cur, trow, cols, 0, 0, off);
        }
        if (rows > 1) {
            memset(alt, 0, hsz * sizeof *alt);
            for (r = 0; r < rows; r++) {
                const int8_t *cur = codes + ch * plane + (size_t)r * cols;
                za |= hist_row(alt, cur, r ? cur - cols : NULL, cols, 1, 1, off);
            }
            const uint32_t zb = zbound(zo | za);
            if (config_cost(alt, 1, NSCHEME - 1, 1, zb) < config_cost(h, 1, NSCHEME - 1, 1, zb)) {
                pred[ch] = 1;
                memcpy(h, alt, hsz * sizeof *h);
                zo = za;
            }
        }
        zor |= zo;
    }
    zlim = zbound(zor);
    for (ch = 0; ch < channels; ch++)
        for (i = 0; i < hsz; i += NSYM)
            for (x = 0; x < zlim; x++) all[i + x] += hist[(size_t)ch * hsz + i + x];
    return zlim;
}

static int enc2(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                uint8_t *out, size_t cap, size_t *out_len, void *work, size_t work_len)
{
    uint32_t *hist = (uint32_t *)work, *enc, st[NLANE], cnt[NSYM], off[257];
    uint8_t *pred;
    unsigned any_pred = 0;
    uint16_t freq[NSYM];
    size_t n, plane, hdr, need = enc2_work(channels);
    uint8_t *ptr, *lim;
    uint64_t best = (uint64_t)-1;
    unsigned scheme, best_scheme = 0, nk, k, lane;
    int per_ch, best_per = 0, full = 0, rc;
    uint32_t g, ngroups, ch, r, x, zlim;
    if (!codes || !out || !out_len || !work) return SC_LL_E_ARG;
    if ((rc = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return rc;
    if (need == 0 || work_len < need) return SC_LL_E_ARG;
    if (cap < n + 1) return SC_LL_E_SPACE;
    plane = (size_t)rows * cols;
    enc = hist + ((size_t)channels + 2) * NK6 * NSYM;
    pred = (uint8_t *)(enc + (size_t)channels * NK6 * NSYM);
    zlim = histogram(codes, channels, rows, cols, hist, pred);
    for (ch = 0; ch < channels; ch++) any_pred |= pred[ch];
    for (scheme = 0; scheme < NSCHEME; scheme++)
        for (per_ch = 0; per_ch < (channels > 1 ? 2 : 1); per_ch++) {
            uint64_t c = config_cost(hist, channels, scheme, per_ch, zlim);
            if (c < best) { best = c; best_scheme = scheme; best_per = per_ch; }
        }
    /* header: tables */
    nk = k_nclass[best_scheme];
    ngroups = best_per ? channels : 1;
    out[0] = (uint8_t)SC_RANS_FORMAT;
    out[1] = (uint8_t)(best_scheme | (best_per ? 4u : 0u) | (any_pred ? 8u : 0u));
    hdr = 2;
    if (any_pred) { /* predictor flags, channel c = bit c % 8 of byte c / 8 */
        const size_t nb = (channels + 7u) / 8u;
        if (hdr + nb + 16u > n) full = 1;
        else {
            memset(out + hdr, 0, nb);
            for (ch = 0; ch < channels; ch++) out[hdr + ch / 8u] |= (uint8_t)(pred[ch] << (ch % 8u));
            hdr += nb;
        }
    }
    for (g = 0; g < ngroups && !full; g++)
        for (k = 0; k < nk && !full; k++) {
            uint32_t *e = enc + ((size_t)g * nk + k) * NSYM, cum = 0;
            int zmax, z;
            gather(hist, channels, best_scheme, best_per, g, k, zlim, cnt);
            memset(freq, 0, sizeof freq);
            zmax = quantise(cnt, zlim, freq);
            if (zmax < -1) return SC_LL_E_ARG;
            if (hdr + table_bytes(freq, zmax) + 16u > n) { full = 1; break; }
            out[hdr++] = (uint8_t)(zmax < 0 ? 0 : zmax);
            for (z = 0; z <= (zmax < 0 ? 0 : zmax); z++) {
                if (freq[z] < 128u) out[hdr++] = (uint8_t)freq[z];
                else { out[hdr++] = (uint8_t)(0x80u | (freq[z] & 127u)); out[hdr++] = (uint8_t)(freq[z] >> 7); }
            }
            for (z = 0; z < (int)NSYM; z++) { e[z] = freq[z] | (cum << 16); cum += freq[z]; }
        }
    /* rANS, last code first; bytes grow down from the end of out */
    ptr = out + cap;
    lim = out + hdr + 16;
    class_offsets(best_scheme, NSYM, off);
    for (lane = 0; lane < NLANE; lane++) st[lane] = RANS_L;
    lane = (unsigned)((n - 1) & (NLANE - 1));
    for (ch = channels; ch-- > 0 && !full;) {
        const uint32_t *et = enc + (best_per ? (size_t)ch * nk : 0) * NSYM;
        const unsigned pc = pred[ch], pt = rows > 1 ? pc : (ch ? pred[ch - 1] : 0u);
        for (r = rows; r-- > 0 && !full;) {
            const int8_t *cur = codes + ch * plane + (size_t)r * cols;
            const int8_t *trow = rows > 1 ? (r ? cur - cols : NULL) : (ch ? cur - plane : NULL);
            /* at most 2 bytes per code: with room for the row, refill without branches */
            const int fast = (size_t)(ptr - lim) > 2u * (size_t)cols;
            for (x = cols; x-- > 0;) {
                const uint32_t e = pc | pt
                    ? et[off[ctx_s(cur, trow, x, pc, pt)] + zig(yv(cur, x, pc))]
                    : et[off[(x ? iabs8(cur[x - 1]) : 0u) + (trow ? iabs8(trow[x]) : 0u)] + zig(cur[x])];
                const uint32_t f = e & 0xFFFFu, smax = f << 19; /* ((2^23 >> 12) << 8) f */
                uint32_t s = st[lane], q;
                if (fast) {
                    uint32_t b = s >= smax;
                    ptr[-1] = (uint8_t)s;
                    ptr -= b;
                    s >>= 8 * b;
                    b = s >= smax;
                    ptr[-1] = (uint8_t)s;
                    ptr -= b;
                    s >>= 8 * b;
                } else {
                    while (s >= smax) {
                        if (ptr <= lim) { full = 1; break; }
                        *--ptr = (uint8_t)s;
                        s >>= 8;
                    }
                    if (full) break;
                }
                q = s / f;
                st[lane] = (q << PROB_BITS) + (s - q * f) + (e >> 16);
                lane = (lane - 1u) & (NLANE - 1);
            }
        }
    }
    if (!full) {
        size_t body = (size_t)(out + cap - ptr);
        if (hdr + 16 + body < n + 1) {
            for (lane = 0; lane < NLANE; lane++) {
                out[hdr + 4 * lane] = (uint8_t)st[lane];
                out[hdr + 4 * lane + 1] = (uint8_t)(st[lane] >> 8);
                out[hdr + 4 * lane + 2] = (uint8_t)(st[lane] >> 16);
                out[hdr + 4 * lane + 3] = (uint8_t)(st[lane] >> 24);
            }
            memmove(out + hdr + 16, ptr, body);
            *out_len = hdr + 16 + body;
            return SC_LL_OK;
        }
    }
    out[0] = SC_LL_FORMAT_STORED; /* coding would not be smaller: store the codes */
    memcpy(out + 1, codes, n);
    *out_len = n + 1;
    return SC_LL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* decoder */

/* Reads the tables; returns the position after them or 0 on a bad / short header. */
static size_t read_tables(const uint8_t *in, size_t len, size_t pos, uint32_t ntab,
                          uint16_t *freq, int *status)
{
    uint32_t t;
    for (t = 0; t < ntab; t++) {
        uint16_t *f = freq + (size_t)t * NSYM;
        uint32_t sum = 0, z, zmax;
        memset(f, 0, NSYM * sizeof *f);
        if (pos >= len) { *status = SC_LL_E_TRUNC; return 0; }
        zmax = in[pos++];
        for (z = 0; z <= zmax; z++) {
            uint32_t v;
            if (pos >= len) { *status = SC_LL_E_TRUNC; return 0; }
            v = in[pos++];
            if (v & 0x80u) {
                if (pos >= len) { *status = SC_LL_E_TRUNC; return 0; }
                v = (v & 127u) | ((uint32_t)in[pos++] << 7);
            }
            if (v > PROB_M - 1) { *status = SC_LL_E_CORRUPT; return 0; }
            f[z] = (uint16_t)v;
            sum += v;
        }
        if (sum != 0 && sum != PROB_M) { *status = SC_LL_E_CORRUPT; return 0; }
    }
    return pos;
}

/* Symbol by slot (sym, 4096 bytes) and cumulative frequencies (cum) of one table; an empty
 * table maps every slot to z = 0 of frequency 0, which the decoder refuses. */
static void build_lut(const uint16_t *f, uint8_t *sym, uint16_t *cum)
{
    uint32_t z, slot = 0;
    for (z = 0; z < NSYM; z++) {
        cum[z] = (uint16_t)slot;
        if (f[z]) memset(sym + slot, (int)z, f[z]);
        slot += f[z];
    }
    if (slot == 0) memset(sym, 0, PROB_M);
}

/* Refills state s from the payload; returns 0 when the payload ends first. */
#define RENORM(s, in, pos, len, fail)                      \
    while ((s) < RANS_L) {                                 \
        if ((pos) >= (len)) fail;                          \
        (s) = ((s) << 8) | (in)[(pos)++];                  \
    }

/* Decodes one row (cols codes) into cur; trow = the T neighbours or NULL. */
static int dec_row(const uint8_t *in, size_t len, size_t *pos_io, uint32_t *st, unsigned *lane_io,
                   int8_t *cur, const int8_t *trow, uint32_t cols, unsigned pc, unsigned pt,
                   const uint32_t *off, const uint8_t *sym, const uint16_t *freq,
                   const uint16_t *cum)
{
    size_t pos = *pos_io;
    unsigned lane = *lane_io, l = 0;
    uint32_t x;
    /* fast path: at most 2 bytes per code are read, so rows with 2 * cols bytes left need no
     * bounds checks (branch-free refill) */
    const int fast = len - pos >= 2u * (size_t)cols;
    for (x = 0; x < cols; x++) {
        const uint32_t t = off[l + (trow ? iabs8(yv(trow, x, pt)) : 0u)];
        uint32_t s = st[lane];
        const unsigned z = sym[t * (PROB_M / NSYM) + (s & (PROB_M - 1))];
        const uint32_t f = freq[t + z];
        if (!f) return SC_LL_E_CORRUPT; /* a class whose table is empty */
        s = f * (s >> PROB_BITS) + (s & (PROB_M - 1)) - cum[t + z];
        if (fast) {
            uint32_t n1 = s < RANS_L, n2;
            s = n1 ? (s << 8) | in[pos] : s;
            pos += n1;
            n2 = s < RANS_L;
            s = n2 ? (s << 8) | in[pos] : s;
            pos += n2;
        } else {
            RENORM(s, in, pos, len, return SC_LL_E_TRUNC)
        }
        st[lane] = s;
        if (pc) { /* undo the left difference, wrapping to int8 */
            cur[x] = (int8_t)wrap8(unzig(z) + (x ? cur[x - 1] : 0));
        } else {
            cur[x] = (int8_t)unzig(z);
        }
        l = (z + 1u) >> 1; /* |y| */
        lane = (lane + 1u) & (NLANE - 1);
    }
    *pos_io = pos;
    *lane_io = lane;
    return SC_LL_OK;
}

#define PFLAG(flags, c) ((flags) ? ((flags)[(c) / 8u] >> ((c) % 8u)) & 1u : 0u)

static int dec2(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                int8_t *out, void *work, size_t work_len)
{
    uint16_t *freq = (uint16_t *)work, *cum;
    uint8_t *sym;
    const uint8_t *pflags = NULL;
    uint32_t st[NLANE], ch, r, ngroups, off[257];
    size_t n, plane, pos, need = dec2_work(channels);
    unsigned scheme, nk, lane, k;
    int per_ch, rc = SC_LL_OK;
    if (!in || !out || !work) return SC_LL_E_ARG;
    if ((rc = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return rc;
    if (need == 0 || work_len < need) return SC_LL_E_ARG;
    if (len < 1) return SC_LL_E_TRUNC;
    if (in[0] == SC_LL_FORMAT_STORED) return sc_ll_read_stored(in, len, n, out);
    if (in[0] != SC_RANS_FORMAT) return SC_LL_E_FORMAT;
    if (len < 2) return SC_LL_E_TRUNC;
    if (in[1] & ~15u) return SC_LL_E_CORRUPT;
    if (len > n) return SC_LL_E_TRAILING; /* a coded payload is always shorter than n + 1 */
    scheme = in[1] & 3u;
    per_ch = (in[1] >> 2) & 1;
    if (per_ch && channels == 1) return SC_LL_E_CORRUPT;
    nk = k_nclass[scheme];
    ngroups = per_ch ? channels : 1;
    cum = freq + (size_t)channels * NK6 * NSYM;
    sym = (uint8_t *)(cum + NK6 * NSYM);
    pos = 2;
    if (in[1] & 8u) { /* predictor flags: channel c = bit c % 8 of byte c / 8, the rest 0 */
        const size_t nb = (channels + 7u) / 8u;
        if (len - pos < nb) return SC_LL_E_TRUNC;
        pflags = in + pos;
        pos += nb;
        if (channels % 8u && (pflags[nb - 1] >> (channels % 8u))) return SC_LL_E_CORRUPT;
    }
    pos = read_tables(in, len, pos, ngroups * nk, freq, &rc);
    if (!pos) return rc;
    if (len - pos < 16) return SC_LL_E_TRUNC;
    for (lane = 0; lane < NLANE; lane++, pos += 4) {
        st[lane] = in[pos] | ((uint32_t)in[pos + 1] << 8) | ((uint32_t)in[pos + 2] << 16)
                   | ((uint32_t)in[pos + 3] << 24);
        if (st[lane] < RANS_L || st[lane] >= (RANS_L << 8)) return SC_LL_E_CORRUPT;
    }
    plane = (size_t)rows * cols;
    class_offsets(scheme, NSYM, off);
    lane = 0;
    for (ch = 0; ch < channels; ch++) {
        const uint16_t *fg = freq + (size_t)(per_ch ? ch : 0) * nk * NSYM;
        if (per_ch || ch == 0)
            for (k = 0; k < nk; k++) build_lut(fg + k * NSYM, sym + k * PROB_M, cum + k * NSYM);
        const unsigned pc = PFLAG(pflags, ch);
        const unsigned pt = rows > 1 ? pc : (ch ? PFLAG(pflags, ch - 1) : 0u);
        for (r = 0; r < rows; r++) {
            int8_t *cur = out + ch * plane + (size_t)r * cols;
            const int8_t *trow = rows > 1 ? (r ? cur - cols : NULL) : (ch ? cur - plane : NULL);
            rc = dec_row(in, len, &pos, st, &lane, cur, trow, cols, pc, pt, off, sym, fg, cum);
            if (rc != SC_LL_OK) return rc;
        }
    }
    if (pos != len) return SC_LL_E_TRAILING;
    for (lane = 0; lane < NLANE; lane++)
        if (st[lane] != RANS_L) return SC_LL_E_CORRUPT;
    return SC_LL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* format 4: significance nibbles + nonzero values, 8 interleaved states, 16-bit renormalisation
 *
 * y, zig, the T row, the predictor flags (chosen here from min(|y|, 2) sums over every 4th row)
 * and k6 as in format 2. Each row is cut into nibbles of 4 columns (4k .. 4k + 3; the last one
 * of a row has zero bits beyond it). Per nibble, in column order: the mask symbol m (bit i =
 * y of column 4k + i is nonzero) with mask table 2 popcount(u) + b, u = the mask bits of the
 * same columns of the T row (0 without one), b = 1 when y of column 4k - 1 is nonzero (0 in
 * column 0); then, for each set bit in column order, the value symbol zig(y) - 1 with value
 * table 10 + k6(|y_L| + |y_T|). Payload: byte 0 = 4, byte 1 = config (bit 3 = predictor
 * flags follow, only for grids with rows > 1; other bits 0), the flags as in format 2, 16
 * tables (mask tables 0 .. 9 over 16 symbols, value tables 10 .. 15 over 255), each a byte zq
 * (< the table's symbol count) and zq + 1 bytes q of log-scale counts c(q) (see q_count) of
 * symbols 0 .. zq, the frequencies being quantise() of those counts (f4_quantise); then 8
 * states (32-bit little endian, each in [2^15, 2^31)) and 16-bit little-endian words.
 * Symbol j (in coding order) uses state j mod 8; decoding as in format 2 except that a state
 * below 2^15 takes one word: x = (x << 16) | word. After the last symbol every state is 2^15
 * and every word has been read. The encoder multiplies by reciprocals (no division per
 * symbol) and derives the symbols with 8-byte word operations; sc_rans_encode codes frames
 * of fewer than F4_MIN codes in format 2 only, and frames of at most F4_TRY2 codes in both
 * formats, keeping the smaller payload. */

#define F4_L (1u << 15)
#define F4_LANES 8u
#define F4_NMASK 10u
#define F4_NTAB (F4_NMASK + NK6)
#define F4_TRY2 32768u /* frames of at most this many codes also try format 2 */
#define F4_MIN 2048u   /* frames of fewer codes are coded in format 2 only (16 tables + 8 states) */

typedef struct { /* one symbol of the encoder: x_max, reciprocal of f, bias, 4096 - f, shift */
    uint32_t x_max, rcp, bias;
    uint16_t cmpl, shift;
} f4sym_t;

#define F4_NHIST 4u /* histograms counted side by side (symbol j into j % 4): shorter chains */
static size_t f4_enc_work(void) /* hist[4][16][256] u32, sym[16][256], ent[9][256] u16, pred[C] u8 */
{
    return (size_t)F4_NTAB * NSYM * (sizeof(f4sym_t) + 4u * F4_NHIST) + 9u * NSYM * 2u;
}

static size_t f4_dec_work(void)
{
    return (size_t)F4_NTAB * (PROB_M + NSYM * 4u);
}

size_t sc_rans_enc_work(uint32_t channels)
{
    /* + room for a format-2 payload of a small frame at the end */
    size_t a = enc2_work(channels), b = f4_enc_work() + channels;
    return a == 0 || a > (size_t)-1 - F4_TRY2 - 1u ? 0 : (a > b ? a : b) + F4_TRY2 + 1u;
}

size_t sc_rans_dec_work(uint32_t channels)
{
    size_t a = dec2_work(channels), b = f4_dec_work();
    return a == 0 ? 0 : a > b ? a : b;
}

size_t sc_rans_dec_work_format(unsigned format, uint32_t channels)
{
    return format == SC_RANS_FORMAT_SIG ? f4_dec_work() : sc_rans_dec_work(channels);
}

static inline uint64_t ld8(const int8_t *p) /* 8 bytes, little endian (one load on LE targets) */
{
    const uint8_t *q = (const uint8_t *)p;
    return (uint64_t)q[0] | (uint64_t)q[1] << 8 | (uint64_t)q[2] << 16 | (uint64_t)q[3] << 24
           | (uint64_t)q[4] << 32 | (uint64_t)q[5] << 40 | (uint64_t)q[6] << 48
           | (uint64_t)q[7] << 56;
}

#define HI8 0x8080808080808080ull

/* 8 bytes in native order (the bytewise operations below do not depend on it) */
static inline uint64_t ldn(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* the 8 bytes left of p (column -1 = 0 where p is column 0 of its row) */
static inline uint64_t ldn_left(const int8_t *p, int first)
{
    int8_t b[8];
    if (!first) return ldn(p - 1);
    b[0] = 0;
    memcpy(b + 1, p, 7);
    return ldn(b);
}

/* bit 7 of each byte = the byte is nonzero; the number of nonzero bytes */
static inline uint64_t nzb(uint64_t w)
{
    const uint64_t lo7 = 0x7F7F7F7F7F7F7F7Full;
    return (((w & lo7) + lo7) | w) & ~lo7;
}
static inline unsigned cnt8(uint64_t w) { return (unsigned)(((nzb(w) >> 7) * 0x0101010101010101ull) >> 56); }

/* bit i = byte i of w (loaded little endian) is nonzero */
static inline unsigned nz8(uint64_t w) { return (unsigned)(((nzb(w) >> 7) * 0x0102040810204080ull) >> 56); }

/* bytewise |v| of 8 int8 (|-128| = 128) and bytewise a - b mod 256, without carries */
static inline uint64_t abs8x8(uint64_t w)
{
    const uint64_t s = (w & HI8) >> 7;
    return (w ^ (s * 0xFFu)) + s;
}
static inline uint64_t sub8x8(uint64_t a, uint64_t b) { return ((a | HI8) - (b & ~HI8)) ^ ((a ^ ~b) & HI8); }

static const uint8_t k_pc4[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

static const uint8_t k_ctz4[16] = {0, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0};

/* Mask tables of the two nibbles of a block of 8 columns: u = the T row's mask bits there,
 * b = y of the column left of the block is nonzero, m = this block's mask bits */
static inline unsigned mt_lo(unsigned u, unsigned b) { return 2u * k_pc4[u & 15u] + b; }
static inline unsigned mt_hi(unsigned u, unsigned m) { return 2u * k_pc4[u >> 4] + ((m >> 3) & 1u); }

/* Row context of format 4: the row, its T row (or NULL), their predictor flags, its width. */
typedef struct {
    const int8_t *cur, *trow;
    uint32_t cols;
    unsigned pc, pt;
} f4row_t;

/* Predictor choice of a 2-D channel: the left difference where it gives a smaller sum of
 * min(|y|, 2) over rows 0, 4, 8, .. of the channel (1-D signals: never). */
static unsigned f4_pred(const int8_t *p, uint32_t rows, uint32_t cols)
{
    const uint64_t not1 = ~0x0101010101010101ull;
    uint32_t r, x;
    size_t c0 = 0, c1 = 0;
    if (rows < 2) return 0;
    for (r = 0; r < rows; r += 4u, p += 4u * (size_t)cols) {
        for (x = 0; x + 8u <= cols; x += 8u) {
            const uint64_t v = ldn(p + x), a = abs8x8(v), d = abs8x8(sub8x8(v, ldn_left(p + x, !x)));
            c0 += cnt8(a) + cnt8(a & not1);
            c1 += cnt8(d) + cnt8(d & not1);
        }
        for (; x < cols; x++) {
            const unsigned a = iabs8(p[x]), d = iabs8(wrap8(p[x] - (x ? p[x - 1] : 0)));
            c0 += a < 2u ? a : 2u;
            c1 += d < 2u ? d : 2u;
        }
    }
    return c1 < c0;
}

/* Format 4 tables: a byte zmax, then per symbol z = 0 .. zmax a byte q, its count on a log
 * scale, c(q) = q below 32, else (16 + q % 16) << (q / 16 - 1); the frequencies are quantise()
 * of these counts, a lone symbol's made-up neighbour kept inside the alphabet (zlim symbols). */
static uint32_t q_count(unsigned q) { return q < 32u ? q : (16u + (q & 15u)) << ((q >> 4) - 1u); }

static unsigned q_code(uint32_t c) /* the nearest q (c < 2^18) */
{
    unsigned sh = 0, m;
    if (c < 32u) return c;
    while ((c >> sh) >= 32u) sh++;
    m = (c + (1u << (sh - 1u))) >> sh;
    if (m == 32u) { m = 16u; sh++; }
    return ((sh + 1u) << 4) | (m - 16u);
}

static int f4_quantise(const uint32_t *cnt, uint32_t zlim, uint16_t *freq)
{
    int zmax;
    memset(freq, 0, NSYM * sizeof *freq);
    zmax = quantise(cnt, zlim, freq);
    if (zmax == (int)zlim) { /* lone symbol zlim - 1: its neighbour below instead */
        freq[zlim] = 0;
        freq[zlim - 2u] = 1;
        zmax = (int)zlim - 1;
    }
    return zmax;
}

/* Writes table t's bytes (cnt: its counts) at out + *hdr unless they would pass out + end;
 * freq = the frequencies. Returns 0 when they do not fit. */
static int f4_put_table(const uint32_t *cnt, uint32_t zlim, uint16_t *freq, uint8_t *out,
                        size_t *hdr, size_t end)
{
    uint32_t pseudo[NSYM], maxc = 0, z, sh = 0;
    int zq = -1;
    for (z = 0; z < zlim; z++)
        if (cnt[z]) { zq = (int)z; if (cnt[z] > maxc) maxc = cnt[z]; }
    while ((maxc >> sh) >= (1u << 18)) sh++;
    if (*hdr + 2u + (zq < 0 ? 0u : (unsigned)zq) > end) return 0;
    out[(*hdr)++] = (uint8_t)(zq < 0 ? 0 : zq);
    for (z = 0; z < zlim; z++) {
        const unsigned q = cnt[z] ? q_code(cnt[z] >> sh ? cnt[z] >> sh : 1u) : 0u;
        pseudo[z] = q_count(q);
        if ((int)z <= zq || z == 0) out[(*hdr)++] = (uint8_t)q;
    }
    return f4_quantise(pseudo, zlim, freq) >= -1;
}

static void f4_sym_init(f4sym_t *s, uint32_t cum, uint32_t f)
{
    s->x_max = f << (31u - PROB_BITS); /* ((2^15 >> 12) << 16) f */
    s->cmpl = (uint16_t)(PROB_M - f);
    if (f < 2u) {
        s->rcp = 0xFFFFFFFFu;
        s->shift = 0;
        s->bias = cum + PROB_M - 1u;
    } else {
        uint32_t sh = 0;
        while (f > (1u << sh)) sh++;
        s->rcp = (uint32_t)(((1ull << (sh + 31u)) + f - 1u) / f);
        s->shift = (uint16_t)(sh - 1u);
        s->bias = cum;
    }
}

/* y (when y != NULL) and |y| of columns x0 .. x0 + len - 1 of row c (c points at column x0) */
static void f4_absy(const int8_t *c, uint32_t x0, uint32_t len, unsigned pred, int8_t *y, uint8_t *a)
{
    uint32_t i = 0;
    for (; i + 8u <= len; i += 8u) {
        uint64_t v = ldn(c + i);
        if (pred) v = sub8x8(v, ldn_left(c + i, !i && !x0));
        if (y) memcpy(y + i, &v, 8);
        v = abs8x8(v);
        memcpy(a + i, &v, 8);
    }
    for (; i < len; i++) {
        const int v = pred ? wrap8(c[i] - (i || x0 ? c[(ptrdiff_t)i - 1] : 0)) : c[i];
        if (y) y[i] = (int8_t)v;
        a[i] = (uint8_t)iabs8(v);
    }
}

/* A segment of at most F4_SEG columns (x0 a multiple of 8) of a row, with its neighbours:
 * y[i] = y of column x0 + i, a[i + 1] = |y[i]| (a[0]: column x0 - 1, 0 in column 0),
 * t[i] = |y| of the T row's column x0 + i (0 without one); 0 beyond the row. */
#define F4_SEG 256u
#define F4_SEG_SYMS (F4_SEG + F4_SEG / 4u + 8u) /* the most symbols of a segment + slack */
typedef struct {
    int8_t y[F4_SEG];
    uint8_t a[F4_SEG + 8u], t[F4_SEG];
    const uint16_t *ent; /* [min(s, 8)][y as a byte]: the value symbol (table << 8 | zig(y) - 1) */
} f4seg_t;

/* Value symbols of the nonzero y in columns x .. x + 3 of a segment, written without branches
 * (each column's entry is overwritten by the next unless its y is nonzero); the new count. */
static inline uint32_t f4_vals(const f4seg_t *g, uint32_t x, uint32_t k, uint16_t *sym)
{
    unsigned i;
    for (i = 0; i < 4u; i++) {
        const unsigned s = (unsigned)g->a[x + i] + g->t[x + i];
        sym[k] = g->ent[(s > 8u ? 8u : s) * NSYM + (uint8_t)g->y[x + i]];
        k += g->a[x + i + 1] != 0;
    }
    return k;
}

/* The symbols (table << 8 | symbol, in coding order) of columns x0 .. x0 + F4_SEG - 1 of a row
 * into sym (room for F4_SEG_SYMS); returns their number. t_prev: g holds the T row's segment
 * from the call before (its a is this call's t). */
static uint32_t f4_seg(const f4row_t *w, uint32_t x0, f4seg_t *g, uint16_t *sym, int t_prev)
{
    const uint32_t len = w->cols - x0 < F4_SEG ? w->cols - x0 : F4_SEG, pad = (len + 7u) & ~7u;
    const int8_t *c = w->cur + x0, *t = w->trow ? w->trow + x0 : NULL;
    uint32_t i, k = 0, x;
    if (t_prev) memcpy(g->t, g->a + 1, pad);
    else if (t) f4_absy(t, x0, len, w->pt, NULL, g->t);
    else memset(g->t, 0, pad);
    g->a[0] = (uint8_t)(x0 ? iabs8(yv(w->cur, x0 - 1u, w->pc)) : 0u);
    f4_absy(c, x0, len, w->pc, g->y, g->a + 1);
    for (i = len; i < pad; i++) g->y[i] = 0, g->a[i + 1] = 0, g->t[i] = 0;
    for (x = 0; x < len; x += 8u) {
        const unsigned m = nz8(ld8((const int8_t *)g->a + x + 1)), u = nz8(ld8((const int8_t *)g->t + x));
        sym[k++] = (uint16_t)(mt_lo(u, g->a[x] != 0) << 8 | (m & 15u));
        if (m & 15u) k = f4_vals(g, x, k, sym);
        if (x + 4u < len) {
            sym[k++] = (uint16_t)(mt_hi(u, m) << 8 | (m >> 4));
            if (m >> 4) k = f4_vals(g, x + 4u, k, sym);
        }
    }
    return k;
}

/* One symbol into state v; with room below ptr (2 bytes a symbol), no branches. */
#define F4_PUT(v, e, ptr)                                                                  \
    do {                                                                                   \
        const f4sym_t *e_ = (e); /* everything read from e_ before the bytes are stored */ \
        const uint32_t b_ = (v) >= e_->x_max, w_ = (v) >> (16u * b_);                      \
        const uint32_t n_ = w_ + e_->bias                                                  \
            + ((uint32_t)(((uint64_t)w_ * e_->rcp) >> 32) >> e_->shift) * e_->cmpl;       \
        (ptr)[-2] = (uint8_t)(v);                                                          \
        (ptr)[-1] = (uint8_t)((v) >> 8);                                                   \
        (ptr) -= 2u * b_;                                                                  \
        (v) = n_;                                                                          \
    } while (0)

/* Puts symbols sym[k - 1] .. sym[0] into the states (lane: the state of sym[k - 1]); bytes
 * grow down from *pp, never below lim. Returns 0 when they do not fit. */
static int f4_put(const f4sym_t *sy, const uint16_t *sym, size_t k, uint32_t *st, unsigned *lane_io,
                  uint8_t **pp, const uint8_t *lim)
{
    uint8_t *ptr = *pp;
    unsigned lane = *lane_io;
    if ((size_t)(ptr - lim) < 2u * k) { /* near the end of the room: check every word */
        while (k-- > 0) {
            const f4sym_t *e = sy + sym[k];
            uint32_t v = st[lane], q;
            if (v >= e->x_max) {
                if (ptr - lim < 2) return 0;
                ptr -= 2;
                ptr[0] = (uint8_t)v;
                ptr[1] = (uint8_t)(v >> 8);
                v >>= 16;
            }
            q = (uint32_t)(((uint64_t)v * e->rcp) >> 32) >> e->shift;
            st[lane] = v + e->bias + q * e->cmpl;
            lane = (lane - 1u) & (F4_LANES - 1u);
        }
    } else {
        for (; k > 0 && lane != F4_LANES - 1u; lane = (lane - 1u) & (F4_LANES - 1u)) {
            k--;
            F4_PUT(st[lane], sy + sym[k], ptr);
        }
        if (k >= F4_LANES) { /* whole rounds of the 8 states, lanes 7 .. 0, in registers */
            uint32_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3], s4 = st[4], s5 = st[5],
                     s6 = st[6], s7 = st[7];
            for (; k >= F4_LANES; k -= F4_LANES) { /* the round's 8 entries first (bytes alias) */
                const uint16_t *q = sym + k - F4_LANES;
                const f4sym_t *e0 = sy + q[0], *e1 = sy + q[1], *e2 = sy + q[2], *e3 = sy + q[3],
                              *e4 = sy + q[4], *e5 = sy + q[5], *e6 = sy + q[6], *e7 = sy + q[7];
                F4_PUT(s7, e7, ptr);
                F4_PUT(s6, e6, ptr);
                F4_PUT(s5, e5, ptr);
                F4_PUT(s4, e4, ptr);
                F4_PUT(s3, e3, ptr);
                F4_PUT(s2, e2, ptr);
                F4_PUT(s1, e1, ptr);
                F4_PUT(s0, e0, ptr);
            }
            st[0] = s0, st[1] = s1, st[2] = s2, st[3] = s3, st[4] = s4, st[5] = s5, st[6] = s6, st[7] = s7;
        }
        for (; k > 0; lane = (lane - 1u) & (F4_LANES - 1u)) { k--; F4_PUT(st[lane], sy + sym[k], ptr); }
    }
    *pp = ptr;
    *lane_io = lane;
    return 1;
}

/* Work for one pass over the codes (all symbols kept from the histogram pass to coding);
 * 0 if it would overflow size_t. */
size_t sc_rans_enc_work_frame(uint32_t channels, uint32_t rows, uint32_t cols)
{
    const size_t base = sc_rans_enc_work(channels), per_row = (size_t)cols + cols / 4u + 8u;
    const size_t syms = mul_or_0(mul_or_0((size_t)channels, rows), per_row);
    if (!base || !syms || syms > ((size_t)-1 - base - 8u) / 2u) return 0;
    return base + 8u + 2u * syms;
}

/* Format 4 payload of the codes into out (cap >= n + 1; stored codes where not smaller). */
static int enc4(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols, uint8_t *out,
                size_t cap, size_t *out_len, void *work, size_t work_len)
{
    uint32_t *hist = (uint32_t *)work, st[F4_LANES], ch, r, t;
    f4sym_t *sy = (f4sym_t *)(hist + F4_NHIST * F4_NTAB * NSYM);
    uint16_t *ent = (uint16_t *)(sy + F4_NTAB * NSYM);
    uint8_t *pred = (uint8_t *)(ent + 9u * NSYM), *ptr, *lim;
    uint16_t freq[NSYM], local[F4_SEG_SYMS], *all = NULL, *buf;
    f4seg_t seg;
    size_t n, plane, hdr = 2, nsym = 0;
    unsigned any_pred = 0, lane;
    int rc, full = 0;
    if ((rc = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return rc;
    if (work_len < f4_enc_work() + channels) return SC_LL_E_ARG;
    if (cap < n + 1) return SC_LL_E_SPACE;
    {   /* a work area of sc_rans_enc_work_frame bytes keeps every symbol: one pass */
        const size_t wf = sc_rans_enc_work_frame(channels, rows, cols), base = sc_rans_enc_work(channels);
        if (wf && work_len >= wf) all = (uint16_t *)((uint8_t *)work + ((base + 7u) & ~(size_t)7u));
    }
    plane = (size_t)rows * cols;
    memset(hist, 0, F4_NHIST * F4_NTAB * NSYM * sizeof *hist);
    for (t = 0; t < 9u * NSYM; t++)
        ent[t] = (uint16_t)((F4_NMASK + k_k6[t / NSYM]) << 8 | ((zig((int8_t)(uint8_t)(t % NSYM)) - 1u) & 255u));
    seg.ent = ent;
    for (ch = 0; ch < channels; ch++) any_pred |= pred[ch] = (uint8_t)f4_pred(codes + ch * plane, rows, cols);
    for (ch = 0; ch < channels; ch++)
        for (r = 0; r < rows; r++) {
            const int8_t *cur = codes + ch * plane + (size_t)r * cols;
            f4row_t w = {cur, rows > 1 ? (r ? cur - cols : NULL) : (ch ? cur - plane : NULL), cols,
                         pred[ch], rows > 1 ? pred[ch] : 0u};
            uint32_t x0, k, j;
            for (x0 = 0; x0 < cols; x0 += F4_SEG) {
                buf = all ? all + nsym : local;
                k = f4_seg(&w, x0, &seg, buf, cols <= F4_SEG && w.trow); /* T row: the last call */
                for (j = 0; j + 4u <= k; j += 4u) {
                    hist[buf[j]]++;
                    hist[F4_NTAB * NSYM + buf[j + 1]]++;
                    hist[2u * F4_NTAB * NSYM + buf[j + 2]]++;
                    hist[3u * F4_NTAB * NSYM + buf[j + 3]]++;
                }
                for (; j < k; j++) hist[buf[j]]++;
                nsym += k;
            }
        }
    for (t = 0; t < F4_NTAB * NSYM; t++)
        hist[t] += hist[F4_NTAB * NSYM + t] + hist[2u * F4_NTAB * NSYM + t] + hist[3u * F4_NTAB * NSYM + t];
    out[0] = (uint8_t)SC_RANS_FORMAT_SIG;
    out[1] = (uint8_t)(any_pred ? 8u : 0u);
    if (any_pred) {
        const size_t nb = (channels + 7u) / 8u;
        if (hdr + nb + 4u * F4_LANES > n) full = 1;
        else {
            memset(out + hdr, 0, nb);
            for (ch = 0; ch < channels; ch++) out[hdr + ch / 8u] |= (uint8_t)(pred[ch] << (ch % 8u));
            hdr += nb;
        }
    }
    for (t = 0; t < F4_NTAB && !full; t++) {
        const uint32_t zlim = t < F4_NMASK ? 16u : NSYM - 1u;
        uint32_t cum = 0, z;
        if (n < 4u * F4_LANES || !f4_put_table(hist + t * NSYM, zlim, freq, out, &hdr, n - 4u * F4_LANES)) {
            full = 1;
            break;
        }
        for (z = 0; z < zlim; z++) {
            if (freq[z]) f4_sym_init(sy + t * NSYM + z, cum, freq[z]);
            cum += freq[z];
        }
    }
    ptr = out + cap;
    lim = out + hdr + 4u * F4_LANES;
    for (lane = 0; lane < F4_LANES; lane++) st[lane] = F4_L;
    lane = (unsigned)((nsym - 1u) & (F4_LANES - 1u));
    if (all && !full) full = !f4_put(sy, all, nsym, st, &lane, &ptr, lim);
    for (ch = channels; ch-- > 0 && !full && !all;) /* else: the symbols again, segment by segment */
        for (r = rows; r-- > 0 && !full;) {
            const int8_t *cur = codes + ch * plane + (size_t)r * cols;
            f4row_t w = {cur, rows > 1 ? (r ? cur - cols : NULL) : (ch ? cur - plane : NULL), cols,
                         pred[ch], rows > 1 ? pred[ch] : 0u};
            uint32_t x0 = (cols - 1u) / F4_SEG * F4_SEG;
            for (;; x0 -= F4_SEG) {
                if (!f4_put(sy, local, f4_seg(&w, x0, &seg, local, 0), st, &lane, &ptr, lim)) { full = 1; break; }
                if (x0 == 0) break;
            }
        }
    if (!full) {
        const size_t body = (size_t)(out + cap - ptr);
        if (hdr + 4u * F4_LANES + body < n + 1) {
            for (lane = 0; lane < F4_LANES; lane++)
                for (t = 0; t < 4u; t++) out[hdr + 4u * lane + t] = (uint8_t)(st[lane] >> (8u * t));
            memmove(out + hdr + 4u * F4_LANES, ptr, body);
            *out_len = hdr + 4u * F4_LANES + body;
            return SC_LL_OK;
        }
    }
    out[0] = SC_LL_FORMAT_STORED;
    memcpy(out + 1, codes, n);
    *out_len = n + 1;
    return SC_LL_OK;
}

int sc_rans_encode_format(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                          unsigned format, uint8_t *out, size_t cap, size_t *out_len, void *work,
                          size_t work_len)
{
    if (!codes || !out || !out_len || !work || work_len < sc_rans_enc_work(channels)) return SC_LL_E_ARG;
    if (format == SC_RANS_FORMAT) return enc2(codes, channels, rows, cols, out, cap, out_len, work, work_len);
    if (format == SC_RANS_FORMAT_SIG) return enc4(codes, channels, rows, cols, out, cap, out_len, work, work_len);
    return SC_LL_E_ARG;
}

int sc_rans_encode(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                   uint8_t *out, size_t cap, size_t *out_len, void *work, size_t work_len)
{
    size_t n, len2 = 0;
    uint8_t *tmp;
    int rc;
    if (sc_ll_dims(channels, rows, cols, &n) == SC_LL_OK && n < F4_MIN) /* format 4 never wins */
        return sc_rans_encode_format(codes, channels, rows, cols, SC_RANS_FORMAT, out, cap, out_len,
                                     work, work_len);
    rc = sc_rans_encode_format(codes, channels, rows, cols, SC_RANS_FORMAT_SIG, out, cap, out_len,
                               work, work_len);
    if (rc != SC_LL_OK || n > F4_TRY2) return rc;
    /* small frames: format 2 (fewer tables and states) into the end of the work area */
    tmp = (uint8_t *)work + work_len - (n + 1);
    rc = enc2(codes, channels, rows, cols, tmp, n + 1, &len2, work, work_len - (n + 1));
    if (rc == SC_LL_OK && len2 < *out_len) {
        memcpy(out, tmp, len2);
        *out_len = len2;
    }
    return SC_LL_OK;
}

/* Decodes one format-4 symbol of table t from state *x; -1 on a bad payload. */
static inline int f4_get(uint32_t *x, unsigned t, const uint8_t *lut, const uint16_t *freq,
                         const uint16_t *cum, const uint8_t *in, size_t len, size_t *pos, int fast)
{
    uint32_t v = *x;
    const unsigned slot = v & (PROB_M - 1u), z = lut[t * PROB_M + slot];
    const uint32_t f = freq[t * NSYM + z];
    if (!f) return -1;
    v = f * (v >> PROB_BITS) + slot - cum[t * NSYM + z];
    if (v < F4_L) {
        if (!fast && len - *pos < 2) return -1;
        v = (v << 16) | in[*pos] | (uint32_t)in[*pos + 1] << 8;
        *pos += 2;
    }
    *x = v;
    return (int)z;
}

static int dec4(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                int8_t *out, void *work, size_t work_len)
{
    uint16_t *freq = (uint16_t *)work, *cum = freq + F4_NTAB * NSYM;
    uint8_t *lut = (uint8_t *)(cum + F4_NTAB * NSYM), tb[F4_SEG];
    const uint8_t *pflags = NULL;
    uint32_t st[F4_LANES], ch, r, t;
    size_t n, plane, pos = 2;
    unsigned lane;
    int rc = SC_LL_OK;
    if ((rc = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return rc;
    if (work_len < f4_dec_work()) return SC_LL_E_ARG;
    if (len < 2) return SC_LL_E_TRUNC;
    if (in[1] & ~8u) return SC_LL_E_CORRUPT;
    if (len > n) return SC_LL_E_TRAILING;
    if (in[1] & 8u) {
        const size_t nb = (channels + 7u) / 8u;
        if (len - pos < nb) return SC_LL_E_TRUNC;
        pflags = in + pos;
        pos += nb;
        if (channels % 8u && (pflags[nb - 1] >> (channels % 8u))) return SC_LL_E_CORRUPT;
        if (rows < 2) return SC_LL_E_CORRUPT; /* 1-D signals have no predictor */
    }
    for (t = 0; t < F4_NTAB; t++) {
        const uint32_t zlim = t < F4_NMASK ? 16u : NSYM - 1u;
        uint32_t pseudo[NSYM] = {0}, zq, z;
        if (pos >= len) return SC_LL_E_TRUNC;
        zq = in[pos++];
        if (zq >= zlim) return SC_LL_E_CORRUPT;
        if (len - pos < zq + 1u) return SC_LL_E_TRUNC;
        for (z = 0; z <= zq; z++) pseudo[z] = q_count(in[pos++]);
        if (f4_quantise(pseudo, zlim, freq + t * NSYM) < -1) return SC_LL_E_CORRUPT;
        build_lut(freq + t * NSYM, lut + t * PROB_M, cum + t * NSYM);
    }
    if (len - pos < 4u * F4_LANES) return SC_LL_E_TRUNC;
    for (lane = 0; lane < F4_LANES; lane++, pos += 4) {
        st[lane] = in[pos] | ((uint32_t)in[pos + 1] << 8) | ((uint32_t)in[pos + 2] << 16)
                   | ((uint32_t)in[pos + 3] << 24);
        if (st[lane] < F4_L || st[lane] >= (1u << 31)) return SC_LL_E_CORRUPT;
    }
    plane = (size_t)rows * cols;
    lane = 0;
    for (ch = 0; ch < channels; ch++)
        for (r = 0; r < rows; r++) {
            int8_t *cur = out + ch * plane + (size_t)r * cols;
            const unsigned pc = PFLAG(pflags, ch);
            /* cur holds y until the row is done; the T row holds codes */
            const int8_t *trow = rows > 1 ? (r ? cur - cols : NULL) : (ch ? cur - plane : NULL);
            uint32_t x0, x;
            memset(cur, 0, cols);
            for (x0 = 0; x0 < cols; x0 += F4_SEG) { /* tb: |y| of the T row's segment */
                const uint32_t sl = cols - x0 < F4_SEG ? cols - x0 : F4_SEG, pad = (sl + 7u) & ~7u;
                /* at most one word a symbol: without 2 bytes per symbol left, check each word */
                const int fast = len - pos >= 2u * ((size_t)sl + (sl + 3u) / 4u);
                int8_t *c = cur + x0;
                memset(tb, 0, pad);
                if (trow) f4_absy(trow + x0, x0, sl, rows > 1 ? pc : 0u, NULL, tb);
                for (x = 0; x < sl; x += 4u) {
                    const unsigned u = (nz8(ld8((const int8_t *)tb + (x & ~7u))) >> (x & 4u)) & 15u;
                    const int nib = f4_get(st + lane, 2u * k_pc4[u] + (x0 + x ? c[(ptrdiff_t)x - 1] != 0 : 0u),
                                           lut, freq, cum, in, len, &pos, fast);
                    unsigned bits;
                    if (nib < 0) return SC_LL_E_CORRUPT;
                    lane = (lane + 1u) & (F4_LANES - 1u);
                    if (sl - x < 4u && (nib >> (sl - x))) return SC_LL_E_CORRUPT;
                    for (bits = (unsigned)nib; bits; bits &= bits - 1u) {
                        const uint32_t xx = x + k_ctz4[bits];
                        const unsigned sum = (x0 + xx ? iabs8(c[(ptrdiff_t)xx - 1]) : 0u) + tb[xx];
                        const int z = f4_get(st + lane, F4_NMASK + k6_of(sum), lut, freq, cum, in, len,
                                             &pos, fast);
                        if (z < 0) return SC_LL_E_CORRUPT;
                        lane = (lane + 1u) & (F4_LANES - 1u);
                        c[xx] = (int8_t)unzig((unsigned)z + 1u);
                    }
                }
            }
            if (pc) for (x = 1; x < cols; x++) cur[x] = (int8_t)wrap8(cur[x] + cur[x - 1]);
        }
    if (pos != len) return SC_LL_E_TRAILING;
    for (lane = 0; lane < F4_LANES; lane++)
        if (st[lane] != F4_L) return SC_LL_E_CORRUPT;
    return SC_LL_OK;
}

int sc_rans_decode(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                   int8_t *out, void *work, size_t work_len)
{
    if (!in || !out || !work) return SC_LL_E_ARG; /* each format checks work_len */
    if (len >= 1 && in[0] == SC_RANS_FORMAT_SIG) return dec4(in, len, channels, rows, cols, out, work, work_len);
    return dec2(in, len, channels, rows, cols, out, work, work_len);
}
