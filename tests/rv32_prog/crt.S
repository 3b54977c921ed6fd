/* Entry of the test program (tests/test_rv32.py): a stack, main(), EBREAK. The test
   memory starts zeroed, so .bss needs no clearing and .data is loaded in place. */
    .section .text.start, "ax"
    .globl _start
_start:
    la    sp, __stack_top
    call  main
    ebreak
