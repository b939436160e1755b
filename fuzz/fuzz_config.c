/*
 * fuzz_config.c - xitzin.conf from untrusted bytes: any file must load
 * or fail with a "file:line: reason" message, never crash or leak; a file
 * that loads must also apply (or fail the same way) on a fresh app.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "xz_private.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512] = "";
	struct xz_config *cfg;
	struct xz_app *app;
	int fd = memfd_create("xitzin-fuzz.conf", 0);

	if (fd == -1)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg = xz_config_load(path, err, sizeof(err));
	if (cfg == NULL) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort(); /* every error names the file */
	} else if ((app = xz_app_new()) != NULL) {
		(void)xz_config_apply(cfg, app, err, sizeof(err));
		xz_app_free(app);
	}
	xz_config_free(cfg);
	close(fd);
	return 0;
}
