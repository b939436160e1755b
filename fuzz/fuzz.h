/*
 * fuzz.h - what every libFuzzer target shares: its entry point, and
 * check(), which turns a broken promise of the parser into a crash the
 * fuzzer reports (and the corpus replay, fuzz/driver.c, fails on).
 */
#ifndef XZ_FUZZ_H
#define XZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define check(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
