/* Platform layer of the firmware: the byte link and the cycle counter.
 *
 * Two implementations: fw/hal_rv32.h (the soft-core SoC, hdl/soc.py: memory-mapped UART
 * FIFOs and a free-running cycle counter) and fw/hal_native.c (a host process serving the
 * link on a TCP socket, for tests).
 *
 * Build-time constants (defines, see fw/build.py): FW_CLK_FREQ (Hz), FW_BAUD (bit/s),
 * FW_RX_FIFO_DEPTH (bytes the receive FIFO holds), FW_MAX_PAYLOAD (bytes per frame
 * payload), FW_TIMEOUT_CYCLES (inter-byte timeout inside a frame, in cycles).
 */
#ifndef FW_HAL_H
#define FW_HAL_H

#include <stdint.h>

#define HAL_RX_OVERFLOW 1u    /* a received byte was lost: the receive FIFO was full */
#define HAL_RX_FRAMING  2u    /* the UART saw a stop bit low */

/* The next received byte (0..255), or -1 if none is waiting. Never blocks. */
int hal_getc(void);

/* Queue one byte for transmission; waits while the transmit FIFO is full. */
void hal_putc(uint8_t byte);

/* Free-running count of clock cycles (FW_CLK_FREQ per second); wraps at 2^32. */
uint32_t hal_cycles(void);

/* Sticky receive error flags (HAL_RX_*) since the last hal_clear_link_flags(). */
uint32_t hal_link_flags(void);
void hal_clear_link_flags(void);

#define HAL_LED_BUSY  1u      /* the model is computing */
#define HAL_LED_ERROR 2u      /* a NAK was sent since the last RESET */

/* Drive the status LEDs (HAL_LED_*); a no-op where there are none. */
void hal_leds(uint32_t bits);

#endif
