/*
 * beneath.c - opening a path beneath a directory so that nothing, ".."
 * or a symlink, leads outside it: the static handler's files and the
 * CGI handler's scripts are both opened here. openat2(RESOLVE_BENEATH)
 * has the kernel check every component; where it is missing, a walk
 * that follows no symlink at all.
 */
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "xz_private.h"

/*
 * Without openat2 (kernels before 5.6, some seccomp sandboxes, valgrind):
 * walk the path a component at a time, following no symlink at all, which
 * is stricter than RESOLVE_BENEATH and never looser. Paths come without
 * "." or ".." segments (url.c); one that has them is refused anyway.
 */
int
open_beneath_walk(int dirfd, const char *path, int flags)
{
	char comp[NAME_MAX + 1] = ".";
	const char *p = path;
	int cur = dirfd, next;
	size_t len;

	for (;;) {
		while (*p == '/' || (p[0] == '.' && (p[1] == '/' || !p[1])))
			p++; /* "/" and "." lead nowhere */
		if (*p == '\0')
			break;
		len = strcspn(p, "/");
		if (len > NAME_MAX ||
		    (len == 2 && p[0] == '.' && p[1] == '.')) {
			errno = len > NAME_MAX ? ENAMETOOLONG : EXDEV;
			next = -1;
			goto out;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		p += len;
		if (p[strspn(p, "/.")] == '\0' && strstr(p, "..") == NULL)
			break; /* comp is the last component */
		next = openat(cur, comp,
		    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cur != dirfd)
			close(cur);
		if ((cur = next) == -1)
			return -1;
		strcpy(comp, ".");
	}
	next = openat(cur, comp, flags | O_NOFOLLOW);
out:
	if (cur != dirfd)
		close(cur);
	return next;
}

int
open_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = { 0 };
	int fd;

	how.flags = (uint64_t)flags;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd == -1 && errno == ENOSYS)
		return open_beneath_walk(dirfd, path, flags);
	return fd;
}
