/* Firmware entry: the learning model and the host link, forever.
 *
 * The native build (FW_NATIVE, fw/native_board.py) serves the link on a TCP socket: its
 * hal (fw/hal_native.c) takes the command line first. */
#include "link.h"
#include "snn.h"

#ifdef FW_NATIVE
int hal_native_init(int argc, char **argv);   /* fw/hal_native.c: 0, or the exit code */

int main(int argc, char **argv)
{
    int code = hal_native_init(argc, argv);
    if (code)
        return code;
#else
int main(void)
{
#endif
    snn_init();
    link_init();
    for (;;)
        link_poll();
}
