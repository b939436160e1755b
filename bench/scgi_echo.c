/*
 * scgi_echo.c - a fast SCGI backend for benchmarks: every request gets
 * "20 text/gemini" and a body of a fixed size given on the command line.
 *
 * One thread, epoll, non-blocking sockets, no allocation per request
 * beyond the connection's struct: it must never be the bottleneck, so that
 * what a benchmark measures is the server in front of it. It listens on a
 * Unix socket (-u) or on a loopback TCP address (-l). The request is read
 * whole (netstring and body, SCGI 1) before the answer starts; a malformed
 * one is closed and counted. Counts go to stderr on SIGTERM or SIGINT.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER "20 text/gemini\r\n"
#define MAX_REQUEST 65536   /* netstring + body; more is refused */
#define CHUNK (1024 * 1024) /* body bytes prepared once, sent in turn */

struct client {
	int fd;
	bool answering;
	uint64_t sent; /* of the answer: header, then body */
	size_t len;
	char buf[MAX_REQUEST];
};

static uint64_t body_size;
static char *chunk;
static size_t chunk_len;
static int ep, lfd;
static volatile sig_atomic_t stop;
static unsigned long long served, malformed, unordered;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("scgi_echo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
usage(void)
{
	fputs("usage: scgi_echo -s body_bytes (-u socket_path | -l "
	      "127.0.0.1:port)\n",
	    stderr);
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		die("%s: path too long", path);
	strcpy(sun.sun_path, path);
	(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die("%s: %s", path, strerror(errno));
	return fd;
}

static int
listen_tcp(const char *spec)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	const char *colon = strrchr(spec, ':');
	char host[64];
	int fd, one = 1;
	long port;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		usage();
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || port <= 0 ||
	    port > 65535)
		die("%s: expected IPv4:port", spec);
	if ((ntohl(sin.sin_addr.s_addr) >> 24) != 127)
		die("%s: loopback only", spec);
	sin.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("%s: %s", spec, strerror(errno));
	return fd;
}

static void
client_close(struct client *cl)
{
	close(cl->fd); /* epoll forgets a closed descriptor by itself */
	free(cl);
}

/*
 * 1 when buf holds a whole request, 0 when more must come, -1 when it is
 * not SCGI: "LEN:" netstring of NUL-terminated pairs, ',' and then
 * CONTENT_LENGTH bytes of body. CONTENT_LENGTH should come first (the SCGI
 * spec); a request where it does not is answered, and counted.
 */
static int
request_complete(const char *buf, size_t len)
{
	size_t nslen = 0, i = 0, hdr;
	const char *p, *end;
	unsigned long long clen = 0;
	bool found = false;

	while (i < len && buf[i] >= '0' && buf[i] <= '9' && i < 8)
		nslen = nslen * 10 + (size_t)(buf[i++] - '0');
	if (i == len)
		return 0;
	if (i == 0 || buf[i] != ':')
		return -1;
	hdr = i + 1;
	if (len < hdr + nslen + 1)
		return len - hdr < MAX_REQUEST ? 0 : -1;
	if (buf[hdr + nslen] != ',')
		return -1;
	p = buf + hdr;
	end = p + nslen;
	while (p < end) {
		const char *name = p, *val;

		if ((p = memchr(p, '\0', (size_t)(end - p))) == NULL)
			return -1;
		val = ++p;
		if ((p = memchr(p, '\0', (size_t)(end - p))) == NULL)
			return -1;
		p++;
		if (strcmp(name, "CONTENT_LENGTH") == 0) {
			if (name != buf + hdr)
				unordered++;
			clen = strtoull(val, NULL, 10);
			found = true;
		}
	}
	if (!found)
		return -1;
	return len >= hdr + nslen + 1 + clen ? 1 : 0;
}

/* Writes what the socket takes; true when the whole answer is out. */
static bool
client_answer(struct client *cl)
{
	const uint64_t hlen = sizeof(HEADER) - 1, total = hlen + body_size;
	struct iovec iov[2];
	ssize_t n;

	while (cl->sent < total) {
		int niov = 0;
		uint64_t left;

		if (cl->sent < hlen) {
			iov[niov].iov_base = (char *)HEADER + cl->sent;
			iov[niov++].iov_len = (size_t)(hlen - cl->sent);
		}
		left = total - (cl->sent > hlen ? cl->sent : hlen);
		if (left > 0) {
			size_t off =
			    (size_t)((cl->sent > hlen ? cl->sent - hlen : 0) %
			             chunk_len);

			iov[niov].iov_base = chunk + off;
			iov[niov++].iov_len = left < chunk_len - off ?
			                          (size_t)left :
			                          chunk_len - off;
		}
		n = writev(cl->fd, iov, niov);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return false;
			cl->sent = total; /* the server left: nothing to do */
			return true;
		}
		cl->sent += (uint64_t)n;
	}
	return true;
}

static void
client_event(struct client *cl)
{
	ssize_t n;
	int rc;

	if (!cl->answering) {
		n = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_close(cl);
			return;
		}
		cl->len += (size_t)n;
		if ((rc = request_complete(cl->buf, cl->len)) == 0)
			return;
		if (rc < 0) {
			malformed++;
			client_close(cl);
			return;
		}
		cl->answering = true;
	}
	if (client_answer(cl)) {
		served++;
		client_close(cl);
		return;
	}
	{
		struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = cl };

		(void)epoll_ctl(ep, EPOLL_CTL_MOD, cl->fd, &ev);
	}
}

/* Takes every connection waiting: one wakeup, many accepts. */
static void
accept_all(void)
{
	struct client *cl;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) !=
	       -1) {
		struct epoll_event ev = { .events = EPOLLIN };

		if ((cl = malloc(sizeof(*cl))) == NULL) {
			close(fd);
			continue;
		}
		cl->fd = fd;
		cl->answering = false;
		cl->sent = 0;
		cl->len = 0;
		ev.data.ptr = cl;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
			client_close(cl);
			continue;
		}
		/* The request is usually there already: no wait for it. */
		client_event(cl);
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256], lev = { .events = EPOLLIN };
	struct sigaction sa = { 0 };
	const char *upath = NULL, *tcp = NULL;
	struct rlimit rl;
	char *end;
	int ch, n, i;
	bool sized = false;

	while ((ch = getopt(argc, argv, "l:s:u:")) != -1) {
		switch (ch) {
		case 'l':
			tcp = optarg;
			break;
		case 's':
			body_size = strtoull(optarg, &end, 10);
			if (end == optarg || *end != '\0')
				usage();
			sized = true;
			break;
		case 'u':
			upath = optarg;
			break;
		default:
			usage();
		}
	}
	if (!sized || (upath == NULL) == (tcp == NULL) || optind != argc)
		usage();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	chunk_len = body_size < CHUNK ? (size_t)body_size : CHUNK;
	if (chunk_len == 0)
		chunk_len = 1;
	if ((chunk = malloc(chunk_len)) == NULL)
		die("out of memory");
	/* Gemtext lines of 64 bytes: a body any client can show. */
	for (size_t k = 0; k < chunk_len; k++)
		chunk[k] = (k % 64 == 63) ? '\n' : (char)('a' + k % 26);
	lfd = upath != NULL ? listen_unix(upath) : listen_tcp(tcp);
	if (listen(lfd, 4096) == -1)
		die("listen: %s", strerror(errno));
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	lev.data.ptr = NULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	while (!stop) {
		n = epoll_wait(ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				accept_all();
			else
				client_event(evs[i].data.ptr);
		}
	}
	if (upath != NULL)
		unlink(upath);
	fprintf(stderr,
	    "scgi_echo: %llu served, %llu malformed, %llu with "
	    "CONTENT_LENGTH not first\n",
	    served, malformed, unordered);
	return 0;
}
