/* fw/hal.h for a host process: the UART is a TCP socket (native build, fw/native_board.py).
 *
 *     fw_native [--port] [PORT]      (PORT 0 or none: any free port)
 *
 * listens on 127.0.0.1, prints "socket://127.0.0.1:PORT" on stdout once listening and
 * serves one client at a time: a new connection replaces the old one (as reopening a serial
 * port would); a closed connection is not an error, the firmware keeps running and keeps its
 * state. Bytes the device sends while nobody is connected are lost. SIGTERM/SIGINT (or the
 * death of the parent process) end it with exit code 0.
 *
 * The receive path models a UART at FW_BAUD (10 bits per byte) in front of a receive FIFO of
 * FW_RX_FIFO_DEPTH bytes:
 *
 *   socket --> line (bytes in transit, delivered at the line rate) --> FIFO --> hal_getc
 *
 * The model advances whenever the firmware calls hal_getc (it takes bytes out of the FIFO
 * only then, so applying the deliveries since the last call in one go is exact). Bytes found
 * in the socket are taken to have started arriving when the socket was last seen empty (the
 * earliest they can have come: while the firmware executes a frame nobody looks), and the
 * line delivers them at FW_BAUD / 10 bytes per second from then on. A byte delivered to a
 * full FIFO is dropped and sets HAL_RX_OVERFLOW, as a UART would. hal_cycles counts
 * FW_CLK_FREQ per second of CLOCK_MONOTONIC.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "hal.h"

#define LINE_CAP  65536u            /* bytes in transit taken from the socket */
#define TX_CAP    4096u
#define IDLE_NS   2000000ull        /* longest wait inside one hal_getc (2 ms) */
#define BYTE_NS   ((10ull * 1000000000ull + (FW_BAUD) / 2) / (FW_BAUD))

static int lfd = -1, cfd = -1;
static volatile sig_atomic_t stopping;
static pid_t parent;

static uint8_t fifo[FW_RX_FIFO_DEPTH];
static uint32_t fifo_head, fifo_n;
static uint8_t line[LINE_CAP];
static uint32_t line_head, line_n;
static uint64_t line_t;             /* when the line finished the last byte it delivered */
static uint64_t seen_t;             /* when the socket was last seen empty */
static uint8_t txbuf[TX_CAP];
static uint32_t tx_len;
static uint32_t flags;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void drop_client(void)
{
    if (cfd >= 0)
        close(cfd);
    cfd = -1;
    tx_len = 0;
}

static void stop_now(void)
{
    drop_client();
    if (lfd >= 0)
        close(lfd);
    exit(0);
}

static void check_stop(void)
{
    if (stopping || getppid() != parent)
        stop_now();
}

/* Take what the socket holds into the line (stamped: see the top of the file). */
static void pull(void)
{
    while (cfd >= 0 && line_n < LINE_CAP) {
        uint32_t tail = (line_head + line_n) % LINE_CAP;
        uint32_t room = tail >= line_head ? LINE_CAP - tail : line_head - tail;
        ssize_t n = recv(cfd, line + tail, room, MSG_DONTWAIT);
        if (n > 0) {
            if (line_n == 0 && line_t < seen_t)
                line_t = seen_t;                       /* an idle line starts again */
            line_n += (uint32_t)n;
        } else if (n == 0) {
            drop_client();                             /* closed: keep what came */
        } else if (errno == EINTR) {
            continue;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                drop_client();
            break;
        }
    }
}

/* A new connection replaces the current one (whose unread bytes still go to the device). */
static void accept_new(void)
{
    for (;;) {
        int one = 1, s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0)
            return;
        pull();
        drop_client();
        cfd = s;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

/* Move the bytes the line has delivered by now into the FIFO. */
static void deliver(uint64_t now)
{
    while (line_n && line_t + BYTE_NS <= now) {
        uint8_t b = line[line_head];
        line_t += BYTE_NS;
        line_head = (line_head + 1) % LINE_CAP;
        line_n--;
        if (fifo_n < FW_RX_FIFO_DEPTH)
            fifo[(fifo_head + fifo_n++) % FW_RX_FIFO_DEPTH] = b;
        else
            flags |= HAL_RX_OVERFLOW;
    }
}

static void service(void)
{
    uint64_t now;
    accept_new();
    pull();
    now = now_ns();
    deliver(now);
    seen_t = now;
}

static void flush_tx(void)
{
    uint32_t done = 0;
    while (done < tx_len && cfd >= 0) {
        ssize_t n = send(cfd, txbuf + done, tx_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += (uint32_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            /* the client does not read: wait, unless it is being replaced or we stop */
            struct pollfd p[2] = { { cfd, POLLOUT, 0 }, { lfd, POLLIN, 0 } };
            check_stop();
            if (poll(p, 2, 100) > 0 && (p[1].revents & POLLIN)) {
                accept_new();
                break;
            }
        } else {
            drop_client();
        }
    }
    tx_len = 0;
}

/* Sleep until a byte may be due, data or a client arrives, or IDLE_NS passed. */
static void wait_input(void)
{
    struct pollfd p[2] = { { lfd, POLLIN, 0 }, { cfd, POLLIN, 0 } };
    uint64_t wait = IDLE_NS, now = now_ns();
    struct timespec ts;

    if (line_n) {
        uint64_t due = line_t + BYTE_NS;
        wait = due > now ? due - now : 0;
        if (wait > IDLE_NS)
            wait = IDLE_NS;
    }
    ts.tv_sec = 0;
    ts.tv_nsec = (long)wait;
    ppoll(p, cfd >= 0 && !line_n ? 2 : 1, &ts, NULL);
    seen_t = now_ns();              /* we were looking: what comes now arrived now */
}

int hal_getc(void)
{
    int b;
    check_stop();
    if (tx_len)
        flush_tx();
    service();
    if (!fifo_n) {
        wait_input();
        service();
        if (!fifo_n)
            return -1;
    }
    b = fifo[fifo_head];
    fifo_head = (fifo_head + 1) % FW_RX_FIFO_DEPTH;
    fifo_n--;
    return b;
}

void hal_putc(uint8_t byte)
{
    if (tx_len == TX_CAP)
        flush_tx();
    if (cfd >= 0)
        txbuf[tx_len++] = byte;
}

uint32_t hal_cycles(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * (uint64_t)(FW_CLK_FREQ)
                      + (uint64_t)ts.tv_nsec * (uint64_t)(FW_CLK_FREQ) / 1000000000ull);
}

uint32_t hal_link_flags(void)
{
    return flags;
}

void hal_clear_link_flags(void)
{
    flags = 0;
}

int hal_native_init(int argc, char **argv)
{
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    struct sigaction sa;
    long port = 0;
    int one = 1, k;
    char *end;

    for (k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--port"))
            continue;
        port = strtol(argv[k], &end, 10);
        if (*end || port < 0 || port > 65535) {
            fprintf(stderr, "usage: %s [--port] [PORT]\n", argv[0]);
            return 2;
        }
    }
    parent = getppid();
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;          /* no SA_RESTART: waits end at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4) < 0
        || getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("fw_native: listen");
        return 1;
    }
    seen_t = line_t = now_ns();
    printf("socket://127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    return 0;
}

void hal_leds(uint32_t bits)
{
    (void)bits;     /* no LEDs on a host */
}
