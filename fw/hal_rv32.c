/* fw/hal.h on the soft-core SoC (hdl/soc.py): memory-mapped UART FIFOs and cycle counter.
 * FW_IO_BASE and the register offsets FW_REG_* come from fw/image.py (hdl.soc.IoReg). */
#include "hal.h"

#define REG(offset) (*(volatile uint32_t *)(FW_IO_BASE + (offset)))
#define RX_VALID 0x100u

int hal_getc(void)
{
    uint32_t word = REG(FW_REG_RXDATA);
    return (word & RX_VALID) ? (int)(word & 0xFFu) : -1;
}

void hal_putc(uint8_t byte)
{
    REG(FW_REG_TXDATA) = byte;      /* the bus waits while the transmit FIFO is full */
}

uint32_t hal_cycles(void)
{
    return REG(FW_REG_CYCLES);
}

uint32_t hal_link_flags(void)
{
    uint32_t status = REG(FW_REG_STATUS);
    return ((status & FW_STATUS_RX_OVERFLOW) ? HAL_RX_OVERFLOW : 0)
         | ((status & FW_STATUS_RX_FRAMING) ? HAL_RX_FRAMING : 0);
}

void hal_clear_link_flags(void)
{
    REG(FW_REG_STATUS) = FW_STATUS_RX_OVERFLOW | FW_STATUS_RX_FRAMING;
}

void hal_leds(uint32_t bits)
{
    REG(FW_REG_LEDS) = bits;
}
