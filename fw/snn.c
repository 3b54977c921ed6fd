/* The learning core in firmware: bit-exact with golden/fixed.py (FixedCore), see fw/snn.h.
 *
 * Conventions (as golden/fixed.py): sat_b clamps to the signed b-bit range, usat_b to
 * [0, 2^b - 1], decay(x, q) = (x * q) >> decay_frac, stochastic rounding of p / 2^s is
 * (p + r) >> s with r the low s bits of the lane's next xorshift32 output.
 *
 * `>>` of a negative signed value must be an arithmetic shift (floor division by 2^s, as
 * NumPy): C99 leaves it implementation-defined; gcc and clang define it as arithmetic.
 *
 * Widths: every product is computed in 32 bits when the configured widths prove it fits
 * (the *_w_t working types below, chosen by the preprocessor) and in 64 bits otherwise.
 */
#include "snn.h"

#ifndef SNN_NOW
#define SNN_NOW() 0u     /* no cycle counter: the CYC_* counters stay 0 */
#endif

#define N_IN  SNN_N_IN
#define N_HID SNN_N_HID
#define N_OUT SNN_N_OUT
#define N_PRE SNN_N_PRE
#define DF    SNN_DECAY_FRAC
#define CF    SNN_C_FRAC
#define RF    SNN_RECIP_FRAC

#define MAX2(a, b) ((a) > (b) ? (a) : (b))
/* bit length of x (x < 2^14): usable in #if */
#define BITLEN(x) ((x) >= 8192 ? 14 : (x) >= 4096 ? 13 : (x) >= 2048 ? 12 : (x) >= 1024 ? 11 \
    : (x) >= 512 ? 10 : (x) >= 256 ? 9 : (x) >= 128 ? 8 : (x) >= 64 ? 7 : (x) >= 32 ? 6      \
    : (x) >= 16 ? 5 : (x) >= 8 ? 4 : (x) >= 4 ? 3 : (x) >= 2 ? 2 : (x) >= 1 ? 1 : 0)
#define ACC_BITS (SNN_W_BITS + BITLEN(N_PRE) + 1)   /* FixedParams.acc_bits */
/* width of the stored traces: with OTPE one type holds a and z, so the walk takes either */
#define TRS_BITS (SNN_OTPE ? MAX2(SNN_TR_BITS, SNN_Z_BITS) : SNN_TR_BITS)
#define GT_BITS  TRS_BITS                           /* FixedParams.grad_tr_bits */

#define SMAX(b) ((1LL << ((b) - 1)) - 1)
#define SMIN(b) (-(1LL << ((b) - 1)))
#define UMAX(b) ((1ULL << (b)) - 1)
#define SAT(x, lo, hi) ((x) < (lo) ? (lo) : (x) > (hi) ? (hi) : (x))

#ifdef __GNUC__
#define NOINLINE __attribute__((noinline))   /* small code: helpers called from many places */
#else
#define NOINLINE
#endif

/* -- storage types: the narrowest that hold each value ------------------------------------ */
#if SNN_W_BITS <= 8
typedef int8_t w_t;
#else
typedef int16_t w_t;
#endif
#if SNN_V_BITS <= 8
typedef int8_t v_t;
#elif SNN_V_BITS <= 16
typedef int16_t v_t;
#else
typedef int32_t v_t;
#endif
#if ACC_BITS <= 16
typedef int16_t acc_t;
#else
typedef int32_t acc_t;      /* acc_bits <= 16 + 14 + 1: never more */
#endif
#if TRS_BITS <= 8
typedef uint8_t tr_t;
#elif TRS_BITS <= 16
typedef uint16_t tr_t;
#else
typedef uint32_t tr_t;
#endif
#if SNN_Y_BITS <= 8
typedef int8_t y_t;
#elif SNN_Y_BITS <= 16
typedef int16_t y_t;
#else
typedef int32_t y_t;
#endif
#if SNN_SCORE_BITS <= 8
typedef int8_t score_t;
#elif SNN_SCORE_BITS <= 16
typedef int16_t score_t;
#elif SNN_SCORE_BITS <= 32
typedef int32_t score_t;
#else
typedef int64_t score_t;
#endif
#if SNN_PSI_BITS <= 8
typedef uint8_t psi_t;
#else
typedef uint16_t psi_t;
#endif
#if SNN_GSUM_BITS <= 8
typedef uint8_t gsum_t;
#elif SNN_GSUM_BITS <= 16
typedef uint16_t gsum_t;
#else
typedef uint32_t gsum_t;
#endif

/* -- working types: 32 bits where the widths prove it suffices ------------------------------ */
/* V: decay product v_bits + decay_frac bits; decay(V) + I - theta: max(v_bits, acc_bits) + 2 */
#if SNN_V_BITS + DF <= 32 && MAX2(SNN_V_BITS, ACC_BITS) + 2 <= 32
typedef int32_t vw_t;
#else
typedef int64_t vw_t;
#endif
/* traces a (< 2^tr_bits), z (< 2^z_bits), gsum: decay product width + decay_frac bits */
#if SNN_TR_BITS + DF <= 32
typedef uint32_t aw_t;
#else
typedef uint64_t aw_t;
#endif
#if SNN_Z_BITS + DF <= 32
typedef uint32_t zw_t;
#else
typedef uint64_t zw_t;
#endif
#if SNN_GSUM_BITS + DF <= 32
typedef uint32_t gw_t;
#else
typedef uint64_t gw_t;
#endif
/* gsum * recip: gsum_bits + recip_frac bits (recip <= 2^recip_frac) */
#if SNN_GSUM_BITS + RF <= 32
typedef uint32_t gbw_t;
#else
typedef uint64_t gbw_t;
#endif
/* c <= 2^(c_frac + decay_frac), c * lam < 2^(c_frac + 2 decay_frac); 2^(c_frac + recip_frac) */
#if CF + 2 * DF <= 32 && CF + RF <= 31
typedef uint32_t cw_t;
#else
typedef uint64_t cw_t;
#endif
/* y: decay product y_bits + decay_frac; + sum of <= 4096 W_out (< 2^28); y - target */
#if SNN_Y_BITS + DF <= 32
typedef int32_t yw_t;
#else
typedef int64_t yw_t;
#endif
/* score + y */
#if SNN_SCORE_BITS < 32 && SNN_Y_BITS < 32
typedef int32_t scw_t;
#else
typedef int64_t scw_t;
#endif
/* sum_k B_jk err_k: |.| <= n_out 2^(w_bits + y_bits - 2) */
#if SNN_W_BITS + SNN_Y_BITS - 2 + BITLEN(N_OUT - 1) <= 30
typedef int32_t lw_t;
#define LW_BITS 32
#else
typedef int64_t lw_t;
#define LW_BITS 64
#endif
/* L * psi: l_bits + psi_bits */
#if SNN_L_BITS + SNN_PSI_BITS <= 32
typedef int32_t mw_t;
#else
typedef int64_t mw_t;
#endif
/* Stochastic-rounding updates w - ((p + r) >> s) with p = m * trace (gradient) or
 * err * a_hid (readout). 32 bits when |p| <= 2^(x_bits - 1) (2^t_bits - 1) <= 2^31 - 2^(x_bits-1)
 * (x_bits + t_bits <= 32), w - delta cannot overflow (w_bits <= x_bits) and s <= 31
 * (shift_bits <= 5); see sround32. Else 64 bits: |p| + r < 2^63 for any widths. */
#define G32 (SNN_SHIFT_BITS <= 5 && SNN_L_BITS + GT_BITS <= 32 && SNN_W_BITS <= SNN_L_BITS)
#define R32 (SNN_SHIFT_BITS <= 5 && SNN_Y_BITS + SNN_TR_BITS <= 32 && SNN_W_BITS <= SNN_Y_BITS)
#if G32
typedef int32_t gp_t;
#define G_ROUND sround32
#else
typedef int64_t gp_t;
#define G_ROUND sround64
#endif
#if R32
typedef int32_t rp_t;
#define R_ROUND sround32
#else
typedef int64_t rp_t;
#define R_ROUND sround64
#endif

/* -- state ----------------------------------------------------------------------------------- */
uint32_t snn_counters[SNN_N_COUNTERS];

static w_t w[N_HID][N_PRE];       /* W[j][i]: pre i -> hidden j */
static w_t wout[N_HID][N_OUT];    /* W_out[k][j], stored transposed: a spike's column is a row */
static w_t fb_b[N_HID][N_OUT];    /* random feedback B[j][k] */

static struct {                   /* cleared by snn_start */
    v_t v[N_HID];
    uint8_t s[N_HID];             /* spikes of the previous step */
    tr_t a[N_IN + N_HID];         /* traces a_in, then a_hid: indexed like W's sources */
#if SNN_OTPE
    tr_t z[N_IN + N_HID];         /* z_in, then z_hid */
    gsum_t gsum[N_HID];
    cw_t c;
    uint32_t recip;               /* <= 2^recip_frac */
#endif
    y_t y[N_OUT];
    score_t score[N_OUT];
    uint16_t spk[N_HID];          /* spikes of the last step, ascending */
    uint16_t n_spk;
} st;

static acc_t acc[N_HID];          /* scratch of one step */
static uint16_t nz[N_HID];        /* the readout update: j with a_hid[j] != 0, ascending */
static uint16_t walk_j[N_HID];    /* the gradient walk: neurons ascending ... */
static psi_t walk_v[N_HID];       /* ... and their psi (rule 0) or gbar (rule 1) */
static y_t err[N_OUT];

static snn_hyper_t hy;
static uint32_t l_sh, psi_sh, g_sh, g_mask, go_sh, go_mask;   /* derived from hy */
static uint32_t rng[SNN_LANES + N_OUT];   /* hidden lanes, then readout generators */
static int label, learn;
static uint32_t t_lap;

/* -- helpers --------------------------------------------------------------------------------- */
static NOINLINE void zero(void *p, uint32_t n)
{
    unsigned char *b = (unsigned char *)p;
    while (n--)
        *b++ = 0;
}

static void copy(void *d, const void *s, uint32_t n)   /* a struct assignment may call memcpy */
{
    unsigned char *b = (unsigned char *)d;
    const unsigned char *a = (const unsigned char *)s;
    while (n--)
        *b++ = *a++;
}

static NOINLINE void cnt_add(int idx, uint32_t n)
{
    uint32_t x = snn_counters[idx] + n;
    snn_counters[idx] = x < n ? 0xFFFFFFFFu : x;
}

static NOINLINE void lap(int idx) /* add the cycles since the last lap to counter idx */
{
    uint32_t now = SNN_NOW();
    cnt_add(idx, now - t_lap);
    t_lap = now;
}

static uint32_t rng_next(uint32_t *x)   /* xorshift32 13/17/5; the output is the new state */
{
    uint32_t v = *x;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    return *x = v;
}

/* Jump-ahead for the readout update (event-driven: its draws for synapses whose presynaptic
 * trace is 0 change nothing but the generator). xorshift is linear over GF(2): n steps are
 * a 32 x 32 bit matrix M^n. jump[k] is M^(2^(JUMP_MIN + k)) as 8 tables of 16 words: entry
 * v of table i is the image of v << 4i, so applying it takes 8 look-ups (about as long as
 * 6 steps); runs shorter than 2^JUMP_MIN are stepped. */
#define JUMP_MIN 3
#define BITS_FOR(n) ((n) >= 2048 ? 12 + ((n) >= 4096) : (n) >= 128 ? 8 + ((n) >= 256) + ((n) >= 512) \
                     + ((n) >= 1024) : (n) >= 16 ? 5 + ((n) >= 32) + ((n) >= 64) : 4)  /* n >= 8 */
#define N_JUMPS (N_HID >= (1 << JUMP_MIN) ? BITS_FOR(N_HID) - JUMP_MIN : 0)
#if N_JUMPS
static uint32_t jump[N_JUMPS][8][16];

static uint32_t mat_apply(uint32_t (*tab)[16], uint32_t x)
{
    uint32_t y = 0;
    for (; x; x >>= 4, tab++)
        y ^= (*tab)[x & 15];
    return y;
}

static void jumps_init(void)
{
    for (int k = 0; k < N_JUMPS; k++)
        for (int i = 0; i < 8; i++)
            for (uint32_t v = 0; v < 16; v++) {
                uint32_t x = v << (4 * i);
                if (k == 0)                        /* M^(2^JUMP_MIN): stepped */
                    for (int n = 0; n < (1 << JUMP_MIN); n++)
                        rng_next(&x);
                else                               /* M^(2^(JUMP_MIN + k)): the last squared */
                    x = mat_apply(jump[k - 1], mat_apply(jump[k - 1], x));
                jump[k][i][v] = x;
            }
}
#endif

static uint32_t rng_skip(uint32_t x, uint32_t n)   /* the state n steps later */
{
#if N_JUMPS
    for (int k = N_JUMPS - 1; k >= 0; k--)
        if (n >> (JUMP_MIN + k) & 1)
            x = mat_apply(jump[k], x);
    n &= (1u << JUMP_MIN) - 1;
#endif
    while (n--)
        rng_next(&x);
    return x;
}

#if G32 || R32
/* floor((p + r) / 2^s), r = draw & mask, mask = 2^s - 1, s <= 31, in 32 bits: split p at bit
 * s, p = (p >> s) 2^s + (p & mask), and add r to the low part only (< 2^32). */
static int32_t sround32(int32_t p, uint32_t draw, uint32_t s, uint32_t mask)
{
    return (p >> s) + (int32_t)((((uint32_t)p & mask) + (draw & mask)) >> s);
}
#endif
#if !G32 || !R32
/* the same in 64 bits (s <= 63, mask = 2^min(s, 32) - 1) */
static int64_t sround64(int64_t p, uint32_t draw, uint32_t s, uint32_t mask)
{
    return (p + (int64_t)(draw & mask)) >> s;
}
#endif

static uint32_t shmin(uint32_t s, uint32_t max)
{
    return s < max ? s : max;
}

static uint32_t shmask(uint32_t s)      /* low min(s, 32) bits */
{
    return s >= 32 ? 0xFFFFFFFFu : (1u << s) - 1u;
}

/* step 3 or 7: a = usat_tr(decay(a, lam) + one * [i in list]); z = usat_z(decay(z, lam) + a) */
static void traces(tr_t *a, tr_t *z, int n, const uint16_t *list, int n_list)
{
    uint32_t lam = hy.lam_q;
    int e = 0;
    for (int i = 0; i < n; i++) {
        aw_t x = ((aw_t)a[i] * lam) >> DF;
        if (e < n_list && list[e] == i) {
            x += 1u << SNN_TR_FRAC;
            e++;
        }
        if (x > UMAX(SNN_TR_BITS))
            x = UMAX(SNN_TR_BITS);
        a[i] = (tr_t)x;
#if SNN_OTPE
        zw_t y = (((zw_t)z[i] * lam) >> DF) + (zw_t)x;
        z[i] = (tr_t)(y > UMAX(SNN_Z_BITS) ? UMAX(SNN_Z_BITS) : y);
#else
        (void)z;
#endif
    }
}

/* step 1: the columns col0 + list[e] of W into acc */
static void accumulate(const uint16_t *list, int n, int col0)
{
    for (int e = 0; e < n; e++) {
        const w_t *p = &w[0][col0 + list[e]];
        for (int j = 0; j < N_HID; j++, p += N_PRE)
            acc[j] += *p;
    }
}

/* step 6 for one neuron: W[j,i] = sat_w(W[j,i] - ((m * tr_i + r) >> g_shift)) for all sources
 * i, r from hidden lane i % lanes. Lane by lane (each lane's generator in a register); a
 * lane's draws are still used in i order, as golden.fixed._lane_randoms. */
static void walk_row(w_t *row, const tr_t *tr, int32_t m)
{
    uint32_t s = g_sh, mask = g_mask;
    for (int lane = 0; lane < SNN_LANES; lane++) {
        uint32_t x = rng[lane];
        for (int i = lane; i < N_PRE; i += SNN_LANES) {
            rng_next(&x);
            gp_t v = (gp_t)row[i] - G_ROUND((gp_t)m * (gp_t)tr[i], x, s, mask);
            row[i] = (w_t)SAT(v, SMIN(SNN_W_BITS), SMAX(SNN_W_BITS));
        }
        rng[lane] = x;
    }
}

/* -- API ------------------------------------------------------------------------------------- */
void snn_init(void)
{
    static const snn_hyper_t defaults = {243, 243, 243, 256, 96, 256, 6, 4, 19, 13, 0, 1, 0, 0};
    zero(w, sizeof w);
    zero(wout, sizeof wout);
    zero(fb_b, sizeof fb_b);
#if N_JUMPS
    jumps_init();
#endif
    snn_clear_counters();
    snn_configure(&defaults);
    snn_start(0, 0);
}

/* the 14 fields are 32-bit words in protocol order (fw/link.c relies on it too) */
typedef char hyper_is_14_words[sizeof(snn_hyper_t) == 14 * sizeof(uint32_t) ? 1 : -1];

int snn_check_hyper(const snn_hyper_t *h)
{
    /* field f is valid iff lo_f <= value <= hi_f, i.e. (value - lo_f) <= (hi_f - lo_f) as
     * unsigned; lo_f = 0 except theta (1). Negative theta and target wrap to >= 2^31. */
    static const uint32_t span[14] = {
        UMAX(DF), UMAX(DF), UMAX(DF),                   /* alpha_q, lam_q, kappa_q */
        SMAX(SNN_V_BITS) - 1, UMAX(SNN_PSI_BITS),       /* theta - 1, b_th */
        SMAX(SNN_Y_BITS),                               /* target */
        UMAX(SNN_SHIFT_BITS), UMAX(SNN_SHIFT_BITS),     /* l_shift, psi_shift */
        UMAX(SNN_SHIFT_BITS), UMAX(SNN_SHIFT_BITS),     /* g_shift, go_shift */
        1, 0xFFFFFFFFu, SNN_OTPE ? 1 : 0, 1};           /* feedback, seed, rule, dense */
    const uint32_t *v = (const uint32_t *)h;
    for (int f = 0; f < 14; f++)
        if (v[f] - (f == 3) > span[f])
            return f;
    return -1;
}

void snn_configure(const snn_hyper_t *h)
{
    copy(&hy, h, sizeof hy);
    l_sh = shmin(h->l_shift, 8 * sizeof(lw_t) - 1);      /* x >> s for s >= width: 0 or -1 */
    psi_sh = shmin(h->psi_shift, 8 * sizeof(mw_t) - 1);
    g_sh = shmin(h->g_shift, 8 * sizeof(gp_t) - 1);
    g_mask = shmask(h->g_shift);
    go_sh = shmin(h->go_shift, 8 * sizeof(rp_t) - 1);
    go_mask = shmask(h->go_shift);
    snn_reseed();
}

void snn_reseed(void)
{
    for (uint32_t n = 0; n < SNN_LANES + N_OUT; n++) {
        uint32_t x = hy.seed ^ (0x9E3779B9u * (n + 1u));   /* golden.rng.lane_seed */
        rng[n] = x ? x : 1u;
    }
}

void snn_start(int lbl, int lrn)
{
    zero(&st, sizeof st);
    label = lbl;
    learn = lrn != 0;
}

void snn_step(const uint16_t *events, int n)
{
    uint32_t t_start = SNN_NOW();
    t_lap = t_start;

    /* 1. accumulate: the columns of the events and of the previous step's spikes */
    for (int j = 0; j < N_HID; j++)
        acc[j] = 0;
    accumulate(events, n, 0);
    cnt_add(SNN_CNT_INPUT_EVENTS, (uint32_t)n);
    cnt_add(SNN_CNT_SYN_OPS, (uint32_t)n * N_HID);
#if SNN_RECURRENT
    accumulate(st.spk, st.n_spk, N_IN);
    cnt_add(SNN_CNT_SYN_OPS, (uint32_t)st.n_spk * N_HID);
#endif
    lap(SNN_CNT_CYC_ACCUMULATE);

    /* 0. OTPE normalizer c = decay(c, lam) + 1.0, recip = 2^(c_frac + recip_frac) // c */
#if SNN_OTPE
    st.c = (cw_t)(((cw_t)st.c * hy.lam_q) >> DF) + ((cw_t)1 << CF);
    st.recip = (uint32_t)(((cw_t)1 << (CF + RF)) / st.c);
    int otpe_rule = hy.rule != 0;
#endif
    /* 2. neuron: V, spikes, the active band psi (and gsum, gbar); the walk list if learning */
    int n_spk = 0, n_walk = 0;
    for (int j = 0; j < N_HID; j++) {
        vw_t v = (((vw_t)st.v[j] * (vw_t)hy.alpha_q) >> DF) + acc[j]
                 - (st.s[j] ? (vw_t)hy.theta : 0);
        v = SAT(v, SMIN(SNN_V_BITS), SMAX(SNN_V_BITS));
        st.v[j] = (v_t)v;
        st.s[j] = v >= hy.theta;
        if (st.s[j])
            st.spk[n_spk++] = (uint16_t)j;
        vw_t d = v - hy.theta;
        if (d < 0)
            d = -d;
        uint32_t psi = d < (vw_t)hy.b_th ? hy.b_th - (uint32_t)d : 0u;
#if SNN_OTPE
        gw_t g = (((gw_t)st.gsum[j] * hy.lam_q) >> DF) + psi;
        if (g > UMAX(SNN_GSUM_BITS))
            g = UMAX(SNN_GSUM_BITS);
        st.gsum[j] = (gsum_t)g;
        if (otpe_rule) {
            gbw_t gbar = ((gbw_t)g * st.recip) >> RF;
            psi = (uint32_t)(gbar > UMAX(SNN_PSI_BITS) ? UMAX(SNN_PSI_BITS) : gbar);
        }
#endif
        if (psi && learn) {
            walk_j[n_walk] = (uint16_t)j;
            walk_v[n_walk++] = (psi_t)psi;
        }
    }
    st.n_spk = (uint16_t)n_spk;
    cnt_add(SNN_CNT_SPIKES, (uint32_t)n_spk);
    lap(SNN_CNT_CYC_NEURON);

    /* 3. input traces (and z_in) */
#if SNN_OTPE
    traces(st.a, st.z, N_IN, events, n);
#else
    traces(st.a, 0, N_IN, events, n);
#endif
    lap(SNN_CNT_CYC_TRACE);

    /* 4. readout over the spiking neurons; scores */
    for (int k = 0; k < N_OUT; k++) {
        yw_t y = ((yw_t)st.y[k] * (yw_t)hy.kappa_q) >> DF;
        for (int q = 0; q < n_spk; q++)
            y += wout[st.spk[q]][k];
        y = SAT(y, SMIN(SNN_Y_BITS), SMAX(SNN_Y_BITS));
        st.y[k] = (y_t)y;
        scw_t sc = (scw_t)st.score[k] + y;
        st.score[k] = (score_t)SAT(sc, SMIN(SNN_SCORE_BITS), SMAX(SNN_SCORE_BITS));
    }
    lap(SNN_CNT_CYC_READOUT);

    if (learn) {
        /* 5. error */
        for (int k = 0; k < N_OUT; k++) {
            yw_t e = (yw_t)st.y[k] - (k == label ? (yw_t)hy.target : 0);
            err[k] = (y_t)SAT(e, SMIN(SNN_Y_BITS), SMAX(SNN_Y_BITS));
        }
        /* 6. gradient walk: active j ascending, sources i ascending (lane i % lanes) */
        /* a (rule 0) or z (rule 1): inputs of this step, hidden of the previous step */
        const tr_t *tr = st.a;
#if SNN_OTPE
        if (otpe_rule)
            tr = st.z;
#endif
        for (int q = 0; q < n_walk; q++) {
            int j = walk_j[q];
            const w_t *fb = hy.feedback ? fb_b[j] : wout[j];
            lw_t sum = 0;
            for (int k = 0; k < N_OUT; k++)
                sum += (lw_t)fb[k] * err[k];
            sum >>= l_sh;
#if SNN_L_BITS < LW_BITS
            sum = SAT(sum, SMIN(SNN_L_BITS), SMAX(SNN_L_BITS));
#endif
            int32_t l = (int32_t)sum;
            mw_t m = ((mw_t)l * walk_v[q]) >> psi_sh;
            m = SAT(m, SMIN(SNN_L_BITS), SMAX(SNN_L_BITS));
            walk_row(w[j], tr, (int32_t)m);
        }
        cnt_add(SNN_CNT_ACTIVE, (uint32_t)n_walk);
        cnt_add(SNN_CNT_WEIGHT_UPDATES, (uint32_t)n_walk * N_PRE);
        lap(SNN_CNT_CYC_GRADIENT);
    }

    /* 7. hidden traces (and z_hid) */
#if SNN_OTPE
    traces(st.a + N_IN, st.z + N_IN, N_HID, st.spk, n_spk);
#else
    traces(st.a + N_IN, 0, N_HID, st.spk, n_spk);
#endif
    lap(SNN_CNT_CYC_TRACE);

    if (learn) {
        /* 8. readout update, every j and k: r from readout generator k, whose draws are
         * used in j order (so class by class, the generator in a register). A synapse with
         * a_hid[j] == 0 gets delta = r >> s = 0: only its draw is used up, so the runs of
         * such j are jumped over (rng_skip) and the work follows the nonzero traces. */
        const tr_t *a_hid = st.a + N_IN;
        int n_nz = 0;
        for (int j = 0; j < N_HID; j++)
            if (a_hid[j])
                nz[n_nz++] = (uint16_t)j;
        for (int k = 0; k < N_OUT; k++) {
            uint32_t x = rng[SNN_LANES + k];
            rp_t e = err[k];
            int next = 0;                  /* the first j whose draw is not taken yet */
            for (int t = 0; t < n_nz; t++) {
                int j = nz[t];
                w_t *col = &wout[j][k];
                x = rng_skip(x, (uint32_t)(j - next));
                rng_next(&x);
                rp_t v = (rp_t)*col - R_ROUND(e * (rp_t)a_hid[j], x, go_sh, go_mask);
                *col = (w_t)SAT(v, SMIN(SNN_W_BITS), SMAX(SNN_W_BITS));
                next = j + 1;
            }
            rng[SNN_LANES + k] = rng_skip(x, (uint32_t)(N_HID - next));
        }
        cnt_add(SNN_CNT_READOUT_UPDATES, (uint32_t)N_OUT * N_HID);
        lap(SNN_CNT_CYC_GRADIENT);
    }
    cnt_add(SNN_CNT_STEPS, 1);
    cnt_add(SNN_CNT_CYC_BUSY, SNN_NOW() - t_start);
}

int snn_end(void)
{
    int best = 0;
    for (int k = 1; k < N_OUT; k++)
        if (st.score[k] > st.score[best])
            best = k;
    cnt_add(SNN_CNT_SAMPLES, 1);
    return best;
}

int32_t snn_read(int mem, int row, int col)
{
    switch (mem) {
    case SNN_MEM_W:
        return w[row][col];
    case SNN_MEM_W_OUT:
        return wout[col][row];
    case SNN_MEM_B:
        return fb_b[row][col];
    case SNN_MEM_V:
        return st.v[col];
    case SNN_MEM_SCORE:   /* the low 32 bits when score_bits > 32 (two's complement) */
        return (int32_t)(uint32_t)st.score[col];
    default:
        return st.y[col];
    }
}

void snn_write(int mem, int row, int col, int32_t value)
{
    if (mem == SNN_MEM_W)
        w[row][col] = (w_t)value;
    else if (mem == SNN_MEM_W_OUT)
        wout[col][row] = (w_t)value;
    else if (mem == SNN_MEM_B)
        fb_b[row][col] = (w_t)value;
}

void snn_clear_counters(void)
{
    zero(snn_counters, sizeof snn_counters);
}
