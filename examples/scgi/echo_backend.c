/*
 * echo_backend.c - an SCGI backend in plain C: it answers every request
 * with the variables it received, one "NAME=value" line each, as
 * text/plain. The demo mounts it, and the tests read the lines back to
 * check the variable set xitzin sends.
 *
 * One process, one poll() loop, non-blocking sockets: many requests at
 * once cost it no threads or processes. The request is checked as the
 * SCGI spec has it (a netstring of NUL-terminated pairs, CONTENT_LENGTH
 * first); a malformed one is closed without an answer.
 *
 *	echo_backend HOST:PORT      TCP ("127.0.0.1:4000"; port 0: any)
 *	echo_backend unix:PATH      a Unix socket
 *
 * Once listening it prints "echo_backend: listening on ADDR port N" (or
 * "... on unix:PATH"). SIGTERM or SIGINT stops it.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REQUEST (1024 * 1024) /* header bytes we accept */
#define MAX_CONNS 4096

struct conn {
	int fd;
	char *buf; /* the request while reading, then the answer */
	size_t len, cap;
	size_t off; /* bytes of the answer written */
	bool writing;
};

static volatile sig_atomic_t stopping;
static struct conn *conns[MAX_CONNS];
static size_t nconns;

static void
on_signal(int sig)
{
	stopping = 1;
}

static void
conn_close(size_t i)
{
	close(conns[i]->fd);
	free(conns[i]->buf);
	free(conns[i]);
	conns[i] = conns[--nconns];
}

/*
 * The length of the netstring's block and where it starts, once the
 * whole netstring is in; 0 while more is needed, -1 when malformed.
 */
static int
netstring_frame(const struct conn *c, size_t *start, size_t *blocklen)
{
	size_t i, n = 0;

	for (i = 0; i < c->len && c->buf[i] >= '0' && c->buf[i] <= '9'; i++) {
		if (i > 0 && c->buf[0] == '0')
			return -1; /* a leading zero */
		n = n * 10 + (size_t)(c->buf[i] - '0');
		if (n > MAX_REQUEST)
			return -1;
	}
	if (i == c->len)
		return i > 7 ? -1 : 0;
	if (i == 0 || c->buf[i] != ':')
		return -1;
	if (c->len < i + 1 + n + 1)
		return 0;
	if (c->buf[i + 1 + n] != ',')
		return -1;
	*start = i + 1;
	*blocklen = n;
	return 1;
}

static int
append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	char *p;

	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		if ((p = realloc(*out, *cap)) == NULL)
			return -1;
		*out = p;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	return 0;
}

/*
 * The answer to the block of pairs at b (blen bytes): NULL when the
 * block breaks the SCGI rules (CONTENT_LENGTH must come first, every
 * name has a value, the block ends with a NUL).
 */
static char *
make_answer(const char *b, size_t blen, size_t *alen)
{
	static const char head[] = "20 text/plain\r\n";
	size_t pos = 0, cap = 0, nlen, vlen;
	char *out = NULL;

	*alen = 0;
	if (blen < 16 || memcmp(b, "CONTENT_LENGTH", 15) != 0 ||
	    b[blen - 1] != '\0')
		return NULL;
	if (append(&out, alen, &cap, head, sizeof(head) - 1) == -1)
		return NULL;
	while (pos < blen) {
		nlen = strlen(b + pos);
		if (pos + nlen + 1 >= blen)
			goto bad; /* a name without a value */
		vlen = strlen(b + pos + nlen + 1);
		if (append(&out, alen, &cap, b + pos, nlen) == -1 ||
		    append(&out, alen, &cap, "=", 1) == -1 ||
		    append(&out, alen, &cap, b + pos + nlen + 1, vlen) == -1 ||
		    append(&out, alen, &cap, "\n", 1) == -1)
			goto bad;
		pos += nlen + 1 + vlen + 1;
	}
	return out;
bad:
	free(out);
	return NULL;
}

/* Reads what is there; returns -1 when the connection should go. */
static int
conn_read(struct conn *c)
{
	size_t start, blen, alen;
	char *answer;
	ssize_t n;
	int rc;

	if (c->cap - c->len < 4096) {
		char *p;

		if (c->cap >= MAX_REQUEST + 64)
			return -1;
		c->cap = c->cap == 0 ? 8192 : c->cap * 2;
		if ((p = realloc(c->buf, c->cap)) == NULL)
			return -1;
		c->buf = p;
	}
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->len += (size_t)n;
	if ((rc = netstring_frame(c, &start, &blen)) <= 0)
		return rc;
	if ((answer = make_answer(c->buf + start, blen, &alen)) == NULL)
		return -1;
	free(c->buf);
	c->buf = answer;
	c->len = alen;
	c->off = 0;
	c->writing = true;
	return 0;
}

/* Writes what it can; returns -1 when done or failed (then closed). */
static int
conn_write(struct conn *c)
{
	ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	c->off += (size_t)n;
	return c->off == c->len ? -1 : 0;
}

static void
accept_all(int lfd)
{
	struct conn *c;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) !=
	       -1) {
		if (nconns == MAX_CONNS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		conns[nconns++] = c;
	}
}

static void
serve(int lfd)
{
	static struct pollfd pfd[MAX_CONNS + 1];
	size_t i, n;

	while (!stopping) {
		pfd[0].fd = lfd;
		pfd[0].events = nconns < MAX_CONNS ? POLLIN : 0;
		for (i = 0; i < nconns; i++) {
			pfd[i + 1].fd = conns[i]->fd;
			pfd[i + 1].events =
			    conns[i]->writing ? POLLOUT : POLLIN;
		}
		n = nconns;
		if (poll(pfd, n + 1, -1) == -1)
			continue; /* EINTR: a signal; the loop checks it */
		/* Backwards: conn_close moves the last one into slot i. */
		for (i = n; i > 0; i--) {
			struct conn *c = conns[i - 1];
			int rc = 0;

			if (pfd[i].revents == 0)
				continue;
			if (c->writing)
				rc = conn_write(c);
			else
				rc = conn_read(c);
			if (rc == -1)
				conn_close(i - 1);
		}
		if (pfd[0].revents & POLLIN)
			accept_all(lfd);
	}
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "echo_backend: %s: path too long\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	(void)unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 1024) == -1) {
		perror("echo_backend: unix socket");
		return -1;
	}
	printf("echo_backend: listening on unix:%s\n", path);
	return fd;
}

static int
listen_tcp(const char *where)
{
	struct addrinfo hints = { 0 }, *res;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], port[16];
	const char *colon = strrchr(where, ':');
	int fd, on = 1;

	if (colon == NULL || (size_t)(colon - where) >= sizeof(host)) {
		fprintf(stderr, "echo_backend: %s: want HOST:PORT\n", where);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - where), where);
	snprintf(port, sizeof(port), "%s", colon + 1);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0) {
		fprintf(stderr, "echo_backend: %s: cannot resolve\n", where);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 1024) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		perror("echo_backend: tcp socket");
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	printf("echo_backend: listening on %s port %d\n", host,
	    ntohs(ss.ss_family == AF_INET6 ?
	              ((struct sockaddr_in6 *)&ss)->sin6_port :
	              ((struct sockaddr_in *)&ss)->sin_port));
	return fd;
}

int
main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	bool unix_socket;
	int lfd;

	if (argc != 2) {
		fprintf(stderr, "usage: echo_backend HOST:PORT | unix:PATH\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	unix_socket = strncmp(argv[1], "unix:", 5) == 0;
	lfd = unix_socket ? listen_unix(argv[1] + 5) : listen_tcp(argv[1]);
	if (lfd == -1)
		return 1;
	fflush(stdout);
	serve(lfd);
	while (nconns > 0)
		conn_close(nconns - 1);
	close(lfd);
	if (unix_socket)
		(void)unlink(argv[1] + 5);
	return 0;
}
