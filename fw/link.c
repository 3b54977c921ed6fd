/* Host link of the firmware (see link.h; host/PROTOCOL.md is the specification and
 * hdl/protocol.py the reference for details it leaves open). Freestanding C99. */
#include <stddef.h>
#include <stdint.h>

#include "hal.h"
#include "link.h"
#include "snn.h"

#if !defined(FW_CLK_FREQ) || !defined(FW_BAUD) || !defined(FW_RX_FIFO_DEPTH) || \
    !defined(FW_MAX_PAYLOAD) || !defined(FW_TIMEOUT_CYCLES)
#error "FW_CLK_FREQ, FW_BAUD, FW_RX_FIFO_DEPTH, FW_MAX_PAYLOAD and FW_TIMEOUT_CYCLES must be defined"
#endif
#if FW_MAX_PAYLOAD < 32 || FW_MAX_PAYLOAD > 32768
#error "FW_MAX_PAYLOAD must be in 32..32768 (as the gateware's)"
#endif

/* rx_fifo_depth as the host's window understands it (PROTOCOL.md section 2: two frames plus
 * rx_fifo_depth bytes): the FIFO minus the largest frame, which waits in the FIFO while the
 * one in the frame buffer executes */
#define RX_WINDOW (FW_RX_FIFO_DEPTH - (FW_MAX_PAYLOAD + 9))
#if RX_WINDOW < 64 || RX_WINDOW > 65535
#error "FW_RX_FIFO_DEPTH must exceed FW_MAX_PAYLOAD + 9 by 64 bytes at least (and fit in 16 bits)"
#endif

#define PROTOCOL_VERSION 2
#define N_PRE   (SNN_N_IN + (SNN_RECURRENT ? SNN_N_HID : 0))
#define IW      (SNN_N_IN <= 256 ? 1 : 2)            /* bytes per event index */
#define WB      (SNN_W_BITS <= 8 ? 1 : 2)            /* bytes per weight */
#define NB      ((SNN_N_IN + 7) / 8)                 /* bytes of a bitmap step */
#define NB_MASK ((0xFF << (SNN_N_IN - 8 * (NB - 1))) & 0xFF)   /* invalid bits, last byte */
#define W_MAX   ((1L << (SNN_W_BITS - 1)) - 1)

enum { CMD_IDENTIFY = 1, CMD_RESET, CMD_CONFIGURE, CMD_WRITE_WEIGHTS, CMD_READ_WEIGHTS,
       CMD_SAMPLE, CMD_READ_RESULT, CMD_READ_COUNTERS, CMD_READ_STATUS };
enum { NAK_BAD_CRC = 1, NAK_TOO_LONG, NAK_TIMEOUT, NAK_SEQUENCE, NAK_UNKNOWN_TYPE,
       NAK_BAD_LENGTH, NAK_INDEX_RANGE, NAK_TOO_MANY_EVENTS, NAK_UNSORTED, NAK_PARAM_RANGE,
       NAK_WEIGHT_RANGE, NAK_BUSY, NAK_STATE, NAK_BAD_STEP };

#define IDENTIFY_BYTES 46
#define STATUS_BYTES   18
#define N_COUNTERS     14
#define N_HYPER        14

/* compile-time checks (C99: a negative array size is an error) */
typedef char check_counters[SNN_N_COUNTERS == N_COUNTERS ? 1 : -1];
typedef char check_hyper[sizeof(snn_hyper_t) == 4 * N_HYPER ? 1 : -1];

#define B0(x) ((uint8_t)((uint32_t)(x) & 0xFF))
#define B1(x) ((uint8_t)(((uint32_t)(x) >> 8) & 0xFF))
#define B2(x) ((uint8_t)(((uint32_t)(x) >> 16) & 0xFF))
#define B3(x) ((uint8_t)(((uint32_t)(x) >> 24) & 0xFF))

static const uint8_t identify[IDENTIFY_BYTES] = {
    'S', 'N', 'N', 'L', PROTOCOL_VERSION,
    B0(SNN_N_IN), B1(SNN_N_IN), B0(SNN_N_HID), B1(SNN_N_HID), SNN_N_OUT,
    SNN_RECURRENT ? 1 : 0, SNN_LANES, SNN_W_BITS, SNN_V_BITS, SNN_TR_BITS, SNN_TR_FRAC,
    SNN_Y_BITS, SNN_L_BITS, SNN_PSI_BITS, SNN_DECAY_FRAC, SNN_SCORE_BITS, SNN_SHIFT_BITS,
    SNN_OTPE ? 1 : 0, SNN_Z_BITS, SNN_GSUM_BITS, SNN_C_FRAC, SNN_RECIP_FRAC,
    B0(FW_MAX_PAYLOAD), B1(FW_MAX_PAYLOAD), B0(RX_WINDOW), B1(RX_WINDOW), IW, WB, N_COUNTERS,
    B0(FW_CLK_FREQ), B1(FW_CLK_FREQ), B2(FW_CLK_FREQ), B3(FW_CLK_FREQ),
    B0(FW_BAUD), B1(FW_BAUD), B2(FW_BAUD), B3(FW_BAUD),
    B0(FW_TIMEOUT_CYCLES), B1(FW_TIMEOUT_CYCLES), B2(FW_TIMEOUT_CYCLES), B3(FW_TIMEOUT_CYCLES),
};

/* payload length per command (1..9): exact, or at least (bit 7) */
static const uint8_t len_spec[9] = { 0, 1, 27, 9 | 0x80, 9, 2 | 0x80, 0, 1, 0 };
/* CONFIGURE field widths in bytes, in the order of snn_hyper_t */
static const uint8_t hyper_bytes[N_HYPER] = { 2, 2, 2, 4, 2, 4, 1, 1, 1, 1, 1, 4, 1, 1 };
/* memory shapes (PROTOCOL.md section 3) */
static const uint16_t mem_rows[6] = { SNN_N_HID, SNN_N_OUT, SNN_N_HID, 1, 1, 1 };
static const uint16_t mem_cols[6] = { N_PRE, SNN_N_HID, SNN_N_OUT, SNN_N_HID, SNN_N_OUT,
                                      SNN_N_OUT };

static uint8_t buf[FW_MAX_PAYLOAD];     /* payload of the frame being received/executed */
static uint16_t ev[SNN_N_IN];           /* the events of one step */

static struct link_state {
    uint8_t pad[2];
    /* the READ_STATUS block as it goes out (little endian; flags set when sent) */
    uint8_t status, last_nak, last_nak_type, last_nak_seq, expected, prediction;
    uint32_t acks, naks;
    uint16_t crc_errors, timeouts;
    /* sample state */
    uint8_t in_sample, result_valid, naked;
    /* receiver */
    uint8_t win[7];        /* sliding header window (hunting) */
    uint8_t recv;          /* 1: taking the payload and CRC of a header */
    uint8_t type, seq;     /* header of the current frame */
    uint16_t len, pos;     /* payload length; bytes taken (payload and CRC) */
    uint16_t crc;          /* over LEN TYPE SEQ and what followed */
    uint8_t idle;          /* the FIFO was seen empty at cycle idle_t0 (no byte since) */
    uint32_t idle_t0;
    /* reply */
    uint16_t tx_crc;
    uint16_t detail;       /* of the NAK being returned */
} L;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the status block is sent from memory: little endian targets only"
#endif
typedef char check_status[offsetof(struct link_state, acks) == 8
                          && offsetof(struct link_state, timeouts) == 18 ? 1 : -1];

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))    /* code size: one copy */
#else
#define NOINLINE
#endif

/* CRC-16/CCITT-FALSE, one byte, without a table */
static NOINLINE uint16_t crc16(uint16_t crc, uint8_t b)
{
    uint16_t x = (uint8_t)((crc >> 8) ^ b);
    x ^= x >> 4;
    return (uint16_t)((crc << 8) ^ (x << 12) ^ (x << 5) ^ x);
}

/* -- replies ------------------------------------------------------------------------- */
static NOINLINE void tx(uint32_t b)
{
    L.tx_crc = crc16(L.tx_crc, (uint8_t)b);
    hal_putc((uint8_t)b);
}

static NOINLINE void tx_n(uint32_t v, uint32_t n)       /* n bytes of v, little endian */
{
    for (; n; n--, v >>= 8)
        tx(v);
}

static void tx_bytes(const uint8_t *p, uint32_t n)
{
    for (; n; n--)
        tx(*p++);
}

static void tx_begin(uint8_t type, uint32_t len)
{
    hal_putc(0xA5);
    hal_putc(0x5A);
    L.tx_crc = 0xFFFF;
    tx_n(len, 2);
    tx(type);
    tx(L.seq);
    hal_putc((uint8_t)L.tx_crc);
}

static void tx_end(void)
{
    hal_putc((uint8_t)(L.tx_crc >> 8));
    hal_putc((uint8_t)L.tx_crc);
}

static void ack_begin(uint32_t len)
{
    tx_begin((uint8_t)(L.type | 0x80), len);
}

static uint8_t fail(uint8_t code, uint32_t detail)
{
    L.detail = (uint16_t)detail;
    return code;
}

static uint32_t rd16(uint32_t p)
{
    return buf[p] | (uint32_t)buf[p + 1] << 8;
}

/* -- SAMPLE: the step stream ------------------------------------------------------------ */
/* Check (run = 0: returns 0 or a NAK code, detail set) or run (run = 1) the step stream of
 * the SAMPLE in buf. The same decoder serves both passes. */
static uint8_t steps(uint8_t run)
{
    uint32_t pos = 2, n = L.len;

    while (pos < n) {
        uint32_t at = pos, h = buf[pos++], c, k;
        int32_t prev;

        if ((h & 0xC0) == 0x80) {                      /* run of empty steps */
            if (run)
                for (c = (h & 0x3F) + 1; c; c--)
                    snn_step(ev, 0);
            continue;
        }
        if (h == 0xFF) {                               /* bitmap step */
            c = 0;
            for (k = 0; k < NB; k++) {
                uint32_t b, i;
                if (pos >= n)
                    return fail(NAK_BAD_LENGTH, n);
                b = buf[pos];
                if (k == NB - 1 && (b & NB_MASK))
                    return fail(NAK_INDEX_RANGE, pos);
                pos++;
                for (i = 8 * k; b; i++, b >>= 1)
                    if (b & 1)
                        ev[c++] = (uint16_t)i;
            }
            if (run)
                snn_step(ev, (int)c);
            continue;
        }
        if (h >= 0xE0)                                 /* 0xE0..0xFE reserved */
            return fail(NAK_BAD_STEP, at);
        if (h & 0x80) {                                /* 0xC0..0xDF: 13-bit count */
            if (pos >= n)
                return fail(NAK_BAD_LENGTH, n);
            at = pos;
            h = (h & 0x1F) << 8 | buf[pos++];
        }
        if (h > SNN_N_IN)
            return fail(NAK_TOO_MANY_EVENTS, at);
        prev = -1;
        for (c = 0; c < h; c++) {                      /* h indices, strictly increasing */
            uint32_t idx;
            if (pos + IW > n)
                return fail(NAK_BAD_LENGTH, n);
#if IW == 1
            idx = buf[pos];
#else
            idx = rd16(pos);
#endif
            pos += IW;
            if (idx >= SNN_N_IN)
                return fail(NAK_INDEX_RANGE, pos - 1);
            if ((int32_t)idx <= prev)
                return fail(NAK_UNSORTED, pos - 1);
            ev[c] = (uint16_t)idx;
            prev = (int32_t)idx;
        }
        if (run)
            snn_step(ev, (int)h);
    }
    return 0;
}

/* -- commands --------------------------------------------------------------------------- */
static uint8_t weights(uint8_t write)
{
    uint32_t mem = buf[0], r0 = rd16(1), nr = rd16(3), c0 = rd16(5), nc = rd16(7);
    uint32_t width, r, c, p, i, pass;

    if (mem >= (write ? 3u : 6u) || r0 + nr > mem_rows[mem] || c0 + nc > mem_cols[mem])
        return fail(NAK_INDEX_RANGE, 0);
    width = mem < 3 ? WB : 4;
    p = nr * nc * width;                               /* data bytes */
    if (write) {
        if (L.len != 9 + p)
            return fail(NAK_BAD_LENGTH, 0);
        for (pass = 0; pass < 2; pass++) {             /* check every weight, then write */
            p = 9;
            i = 0;
            for (r = r0; r < r0 + nr; r++)
                for (c = c0; c < c0 + nc; c++, i++, p += WB) {
#if WB == 1
                    int32_t v = (int8_t)buf[p];
#else
                    int32_t v = (int16_t)rd16(p);
#endif
                    if (pass)
                        snn_write((int)mem, (int)r, (int)c, v);
                    else if (v > W_MAX || v < -W_MAX - 1)
                        return fail(NAK_WEIGHT_RANGE, i);
                }
        }
        ack_begin(0);
    } else {
        if (p > 0xFFFF)
            return fail(NAK_BAD_LENGTH, 0);
        ack_begin(p);
        for (r = r0; r < r0 + nr; r++)
            for (c = c0; c < c0 + nc; c++)
                tx_n((uint32_t)snn_read((int)mem, (int)r, (int)c), width);
    }
    return 0;
}

static uint8_t configure(void)
{
    union { snn_hyper_t h; uint32_t w[N_HYPER]; } u;
    uint32_t f, k, p = 0;
    int bad;

    for (f = 0; f < N_HYPER; f++) {
        uint32_t v = 0;
        for (k = 0; k < hyper_bytes[f]; k++)
            v |= (uint32_t)buf[p++] << (8 * k);
        u.w[f] = v;
    }
    bad = snn_check_hyper(&u.h);
    if (bad >= 0)
        return fail(NAK_PARAM_RANGE, (uint32_t)bad);
    snn_configure(&u.h);
    ack_begin(0);
    return 0;
}

/* LEDs as the gateware's: error = a NAK was sent or a receive error happened (sticky until
 * RESET), busy = steps running */
static void leds(uint32_t busy)
{
    hal_leds((busy ? HAL_LED_BUSY : 0)
             | (L.naked || hal_link_flags() ? HAL_LED_ERROR : 0));
}

static uint8_t sample(void)
{
    uint8_t f = buf[0], label = buf[1], code;

    if (f & 0xF8)
        return fail(NAK_PARAM_RANGE, 0);
    if ((f & 1) && label >= SNN_N_OUT)
        return fail(NAK_INDEX_RANGE, 1);
    if (!(f & 1) && !L.in_sample)
        return fail(NAK_STATE, 0);
    code = steps(0);
    if (code)
        return code;
    if (f & 1) {
        snn_start(label, (f >> 2) & 1);
        L.in_sample = 1;
        L.result_valid = 0;
    }
    leds(1);
    steps(1);
    leds(0);
    if (f & 2) {
        L.prediction = (uint8_t)snn_end();
        L.result_valid = 1;
        L.in_sample = 0;
        ack_begin(1);
        tx(L.prediction);
    } else {
        ack_begin(0);
    }
    return 0;
}

/* Validate and execute the frame just received (or answer its transport error). Returns 0
 * once an ACK's payload has gone out (without its CRC), else a NAK code (detail in L). */
static uint8_t execute(uint8_t status)
{
    uint8_t t = L.type, spec;
    uint32_t k, fl;

    if (status) {
        if (status == NAK_BAD_CRC)
            L.crc_errors++;
        if (status == NAK_TIMEOUT)
            L.timeouts++;
        return fail(status, 0);
    }
    if (t != CMD_IDENTIFY && t != CMD_RESET && t != CMD_READ_STATUS) {
        if (L.seq != L.expected)
            return fail(NAK_SEQUENCE, L.expected);
        L.expected = (uint8_t)(L.seq + 1);
    }
    if (t == 0 || t > CMD_READ_STATUS)
        return fail(NAK_UNKNOWN_TYPE, 0);
    if (L.in_sample && (t == CMD_CONFIGURE || t == CMD_WRITE_WEIGHTS))
        return fail(NAK_BUSY, 0);
    spec = len_spec[t - 1];
    if ((spec & 0x80) ? L.len < (spec & 0x7F) : L.len != spec)
        return fail(NAK_BAD_LENGTH, 0);

    switch (t) {
    case CMD_IDENTIFY:
        ack_begin(IDENTIFY_BYTES);
        tx_bytes(identify, IDENTIFY_BYTES);
        return 0;
    case CMD_RESET:
        L.in_sample = 0;
        L.naked = 0;
        L.last_nak = L.last_nak_type = L.last_nak_seq = 0;
        L.expected = (uint8_t)(L.seq + 1);
        hal_clear_link_flags();
        if (buf[0] & 1)
            snn_clear_counters();
        if (buf[0] & 2)
            snn_reseed();
        ack_begin(0);
        return 0;
    case CMD_CONFIGURE:
        return configure();
    case CMD_WRITE_WEIGHTS:
    case CMD_READ_WEIGHTS:
        return weights(t == CMD_WRITE_WEIGHTS);
    case CMD_SAMPLE:
        return sample();
    case CMD_READ_RESULT:
        ack_begin(2 + 4 * SNN_N_OUT);
        tx(L.result_valid);
        tx(L.prediction);
        for (k = 0; k < SNN_N_OUT; k++)
            tx_n((uint32_t)snn_read(SNN_MEM_SCORE, 0, (int)k), 4);
        return 0;
    case CMD_READ_COUNTERS:
        ack_begin(4 * N_COUNTERS);
        for (k = 0; k < N_COUNTERS; k++)
            tx_n(snn_counters[k], 4);
        return 0;
    default: /* CMD_READ_STATUS */
        fl = hal_link_flags();
        L.status = (uint8_t)(L.in_sample | L.result_valid << 2 | L.naked << 5   /* busy: 0 */
                             | (fl & HAL_RX_OVERFLOW ? 0x08 : 0)
                             | (fl & HAL_RX_FRAMING ? 0x10 : 0));
        ack_begin(STATUS_BYTES);
        tx_bytes(&L.status, STATUS_BYTES);
        return 0;
    }
}

/* One frame (status 0: received with a good CRC, else its transport NAK): exactly one reply. */
static void frame(uint8_t status)
{
    uint8_t code = execute(status);

    if (code) {
        L.naks++;
        L.naked = 1;
        L.last_nak = code;
        L.last_nak_type = L.type;
        L.last_nak_seq = L.seq;
        tx_begin(0xFF, 4);
        tx(code);
        tx(L.type);
        tx_n(L.detail, 2);
        tx_end();
    } else {
        tx_end();
        L.acks++;
        if (L.type == CMD_READ_COUNTERS && (buf[0] & 1))
            snn_clear_counters();                      /* clear after reading */
    }
    leds(0);
}

/* -- receiver --------------------------------------------------------------------------- */
static void rx_byte(uint8_t b)
{
    uint32_t k;
    uint16_t crc;

    if (L.recv) {                                      /* payload, then CRC (big endian) */
        L.crc = crc16(L.crc, b);
        if (L.pos < L.len)
            buf[L.pos] = b;
        if (++L.pos == L.len + 2u) {
            L.recv = 0;
            frame(L.crc ? NAK_BAD_CRC : 0);
        }
        return;
    }
    for (k = 0; k < 6; k++)                            /* hunt: slide the header window */
        L.win[k] = L.win[k + 1];
    L.win[6] = b;
    if (L.win[0] != 0xA5 || L.win[1] != 0x5A)
        return;
    crc = 0xFFFF;
    for (k = 2; k < 6; k++)
        crc = crc16(crc, L.win[k]);
    if ((uint8_t)crc != b)
        return;
    L.len = (uint16_t)(L.win[2] | L.win[3] << 8);
    L.type = L.win[4];
    L.seq = L.win[5];
    L.crc = crc;
    L.pos = 0;
    for (k = 0; k < 7; k++)
        L.win[k] = 0;
    if (L.len > FW_MAX_PAYLOAD)
        frame(NAK_TOO_LONG);        /* at once; the payload is hunted through as garbage */
    else
        L.recv = 1;
}

void link_init(void)
{
    volatile uint8_t *p = (volatile uint8_t *)&L;   /* volatile: no memset call */
    uint32_t k;

    for (k = 0; k < sizeof L; k++)
        p[k] = 0;
}

void link_poll(void)
{
    int c;
    uint32_t now;

    while ((c = hal_getc()) >= 0) {
        L.idle = 0;
        rx_byte((uint8_t)c);
    }
    /* the FIFO is empty: time the silence from the first time it is seen empty (execution
     * time does not count, like the gateware's counter which runs only while no byte
     * waits); after FW_TIMEOUT_CYCLES a frame is dropped (NAK TIMEOUT) and a half header
     * forgotten */
    now = hal_cycles();
    if (!L.idle) {
        L.idle = 1;
        L.idle_t0 = now;
    } else if (now - L.idle_t0 >= (uint32_t)FW_TIMEOUT_CYCLES) {
        L.idle = 0;
        if (L.recv) {
            L.recv = 0;
            frame(NAK_TIMEOUT);
        }
        for (c = 0; c < 7; c++)
            L.win[c] = 0;
    }
}
