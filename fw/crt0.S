/* Reset entry of the soft core (hdl/soc.py): stack, .data, .bss, then main(). */
    .section .text.start, "ax"
    .globl _start
_start:
    la    sp, __stack_top
    la    a0, __data_start          /* copy .data from its load image in ROM */
    la    a1, __data_end
    la    a2, __data_load
1:  bgeu  a0, a1, 2f
    lw    t0, 0(a2)
    sw    t0, 0(a0)
    addi  a0, a0, 4
    addi  a2, a2, 4
    j     1b
2:  la    a0, __bss_start           /* zero .bss */
    la    a1, __bss_end
3:  bgeu  a0, a1, 4f
    sw    zero, 0(a0)
    addi  a0, a0, 4
    j     3b
4:  call  main
    ebreak                          /* main never returns: a trap lights the error LED */
