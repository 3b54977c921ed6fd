/* Host link of the firmware: the framed protocol of host/PROTOCOL.md over fw/hal.h.
 *
 * link_poll() receives what the UART has delivered (7-byte sliding header window, payload
 * into one frame buffer of FW_MAX_PAYLOAD bytes, CRC, inter-byte timeout), and executes
 * each complete frame at once: a first pass validates the whole payload, a second executes
 * it, then exactly one reply (ACK or NAK) goes out through hal_putc. While a frame executes
 * nothing is read: the UART receive FIFO (FW_RX_FIFO_DEPTH bytes) holds what arrives.
 *
 * One frame buffer instead of the gateware's two: IDENTIFY reports
 * rx_fifo_depth = FW_RX_FIFO_DEPTH - (FW_MAX_PAYLOAD + 9), the FIFO bytes left beyond the
 * frame waiting in it, which is what the host's window (host/device.py) assumes.
 */
#ifndef FW_LINK_H
#define FW_LINK_H

/* Power-on state of the link (call once, after snn_init()). */
void link_init(void);

/* Process every byte that has arrived (executing and answering complete frames) and the
 * inter-byte timeout; returns when the receive FIFO is empty. Call it forever. */
void link_poll(void);

#endif
