/* main.c — the nnsearch command line (placeholder until the CLI lands). */
#include <stdio.h>
int main(void) { fputs("nnsearch: not built yet\n", stderr); return 1; }
