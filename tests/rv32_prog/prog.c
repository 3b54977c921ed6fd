/* A test program for the RV32 CPU: a sort, 64-bit multiply-accumulates (MUL, MULH, MULHU,
   MULHSU from the compiler) and divisions (compiler-rt). tests/test_rv32.py checks the
   results against Python and runs it on the model and on the gateware. */
#include <stdint.h>

#define N 48

volatile uint32_t results[8] __attribute__((section(".results")));
static uint32_t values[N];

static void sort(uint32_t *a, int n)
{
    for (int i = 1; i < n; i++) {
        uint32_t v = a[i];
        int j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

int main(void)
{
    for (int k = 0; k < N; k++)
        values[k] = (k * 2654435761u) & 0xFFFF;
    sort(values, N);
    uint32_t checksum = 0;
    for (int k = 0; k < N; k++)
        checksum = checksum * 31 + values[k] + k;
    results[0] = checksum;

    int64_t acc = 0;
    uint64_t uacc = 0;
    for (int k = 0; k < N; k++) {
        int32_t x = (int32_t)(values[k] * 40503u) - 0x40000000;
        acc += (int64_t)x * (int64_t)(k - 20) * 977;
        uacc += (uint64_t)values[k] * 0x9E3779B9u + ((uint64_t)(uint32_t)x << 7);
    }
    results[1] = (uint32_t)acc;
    results[2] = (uint32_t)((uint64_t)acc >> 32);
    results[3] = (uint32_t)uacc;
    results[4] = (uint32_t)(uacc >> 32);

    volatile uint32_t num = 1000000007u, den = 12345;
    results[5] = num / den;
    results[6] = num % den;
    volatile int32_t snum = -123456789, sden = 1000;
    results[7] = (uint32_t)(snum / sden);
    __asm__ volatile ("ebreak");
    return 0;
}
