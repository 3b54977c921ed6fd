/* The learning core in firmware: a bit-exact C99 implementation of golden.fixed.FixedCore.
 *
 * Freestanding (no libc). The network is fixed at compile time by the defines SNN_<FIELD>
 * of golden.fixed.FixedParams (fw/build.py: param_defines). One core per program: all state
 * is static. Callers (fw/link.c) validate their arguments; nothing here checks them again
 * (snn_check_hyper is the check of the registers).
 *
 * Optional platform hook: SNN_NOW() returning a uint32_t cycle count, used for the CYC_*
 * counters (they stay 0 when it is not defined).
 */
#ifndef FW_SNN_H
#define FW_SNN_H

#include <stdint.h>

#if !defined(SNN_N_IN) || !defined(SNN_N_HID) || !defined(SNN_N_OUT) || !defined(SNN_RECURRENT) \
    || !defined(SNN_LANES) || !defined(SNN_W_BITS) || !defined(SNN_V_BITS)                      \
    || !defined(SNN_TR_BITS) || !defined(SNN_TR_FRAC) || !defined(SNN_Y_BITS)                   \
    || !defined(SNN_L_BITS) || !defined(SNN_PSI_BITS) || !defined(SNN_DECAY_FRAC)               \
    || !defined(SNN_SCORE_BITS) || !defined(SNN_SHIFT_BITS) || !defined(SNN_OTPE)               \
    || !defined(SNN_Z_BITS) || !defined(SNN_GSUM_BITS) || !defined(SNN_C_FRAC)                  \
    || !defined(SNN_RECIP_FRAC)
#error "snn.h: every SNN_<FIELD> of golden.fixed.FixedParams must be defined (fw/build.py)"
#endif

/* presynaptic sources of a hidden neuron: inputs, then hidden neurons if recurrent */
#define SNN_N_PRE (SNN_N_IN + (SNN_RECURRENT ? SNN_N_HID : 0))

typedef struct {
    uint32_t alpha_q, lam_q, kappa_q;
    int32_t  theta;
    uint32_t b_th;
    int32_t  target;
    uint32_t l_shift, psi_shift, g_shift, go_shift;
    uint32_t feedback, seed, rule, dense;   /* dense: accepted and stored; no effect on results */
} snn_hyper_t;

enum { SNN_MEM_W, SNN_MEM_W_OUT, SNN_MEM_B, SNN_MEM_V, SNN_MEM_SCORE, SNN_MEM_Y };
enum { SNN_CNT_SAMPLES, SNN_CNT_STEPS, SNN_CNT_INPUT_EVENTS, SNN_CNT_SYN_OPS, SNN_CNT_SPIKES,
       SNN_CNT_ACTIVE, SNN_CNT_WEIGHT_UPDATES, SNN_CNT_READOUT_UPDATES,
       SNN_CNT_CYC_ACCUMULATE, SNN_CNT_CYC_NEURON, SNN_CNT_CYC_READOUT, SNN_CNT_CYC_GRADIENT,
       SNN_CNT_CYC_TRACE, SNN_CNT_CYC_BUSY, SNN_N_COUNTERS };   /* 14, the protocol's order */

extern uint32_t snn_counters[SNN_N_COUNTERS];   /* all saturate at 0xFFFFFFFF */

/* power-on: weights, state, counters zero; registers = FixedHyper() defaults (which a build
 * with narrow widths may not accept: configure before running); generators seeded */
void    snn_init(void);
/* -1 if valid, else the number of the first bad field in protocol order (alpha_q 0 .. dense 13) */
int     snn_check_hyper(const snn_hyper_t *h);
void    snn_configure(const snn_hyper_t *h);   /* load registers (checked), reseed generators */
void    snn_reseed(void);                      /* restart generators from the current seed */
void    snn_start(int label, int learn);       /* FixedCore.start_sample (label checked) */
void    snn_step(const uint16_t *events, int n); /* FixedCore.step (sorted, distinct, < n_in) */
int     snn_end(void);                         /* FixedCore.end_sample: prediction, counts a sample */
/* W (n_hid x n_pre), W_OUT (n_out x n_hid), B (n_hid x n_out), V, SCORE, Y (1 x n): value as
 * stored (SCORE: its low 32 bits when score_bits > 32); mem 0..5, row and col in range:
 * checked by caller */
int32_t snn_read(int mem, int row, int col);
void    snn_write(int mem, int row, int col, int32_t value); /* mem 0..2, value in w_bits range */
void    snn_clear_counters(void);

#endif
