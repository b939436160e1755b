/*
 * gemload.c - a Gemini load generator for loopback benchmarks.
 *
 * One thread, epoll, GnuTLS as the client: N connections at a time, each
 * one request (Gemini has no keep-alive), for a duration or a count. It
 * checks every answer (status, body size, close_notify) and reports
 * requests/s, errors by kind, latency percentiles, and what the servers
 * under test spent: CPU per request (user+sys from /proc/PID/stat, reaped
 * children included, sampled after the warm-up and at the end) and peak
 * RSS (VmHWM, reset through /proc/PID/clear_refs when allowed).
 *
 * The client handshake is kept cheap, so that the server is loaded as
 * hard as one client core allows: one key share (X25519 unless -g p256),
 * no certificate verification (GnuTLS still checks the server's
 * CertificateVerify signature in TLS 1.3; that part cannot be skipped).
 * -g openssl makes the ClientHello that OpenSSL 3, Go and Python send by
 * default: one X25519 key share, and P-256, X448, P-521 and P-384 listed
 * as supported. A server that prefers a listed group it got no share for
 * answers with a HelloRetryRequest; each one received is counted (hrr).
 *
 * Two more modes serve the memory scenarios: -H holds N idle connections
 * (handshake done, no request) for the duration; -R reads one answer at a
 * limited rate, like a slow client on a large download.
 *
 * Targets are refused unless they are loopback (127.0.0.0/8, ::1 or the
 * name localhost, which means 127.0.0.1): this is a load generator.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#define MAX_PIDS 8
#define MAX_CONC 100000
#define MAX_SECONDS 3600.0
#define MAX_HEADER 1029 /* "NN " + 1024 bytes of meta + CRLF */
#define READ_CHUNK 65536
#define TICK_MS 50 /* timeout scan and RSS sampling period */

enum err_kind {
	E_CONNECT,
	E_HANDSHAKE,
	E_WRITE,
	E_READ,
	E_TRUNCATED, /* TCP closed without close_notify */
	E_HEADER,    /* no well-formed header line */
	E_STATUS,
	E_BODY, /* body size differs from -b */
	E_TIMEOUT,
	E_IDLE_CLOSED, /* -H: the server dropped an idle connection */
	E_COUNT
};

static const char *const err_name[E_COUNT] = { "connect", "handshake", "write",
	"read", "truncated", "header", "status", "body", "timeout",
	"idle_closed" };

enum slot_state {
	S_FREE,
	S_CONNECTING,
	S_HANDSHAKE,
	S_SEND,
	S_READ,
	S_HOLD,   /* -H: handshake done, waiting */
	S_PAUSED, /* -R: over the rate, reads suspended */
};

struct slot {
	int fd;
	enum slot_state state;
	gnutls_session_t s;
	double started; /* when connect() was called */
	double resume_at;
	char header[MAX_HEADER + 1];
	size_t hlen;
	bool header_done;
	bool retry;  /* the request record is built, waiting to be sent */
	bool queued; /* in st.restart */
	int status;
	uint64_t body;
};

struct pidset {
	pid_t pid[MAX_PIDS];
	int n;
};

struct opts {
	int conc;
	double duration;
	double warmup;
	uint64_t count; /* 0: no limit */
	int status;
	long long body; /* -1: any */
	bool tls12;
	bool resume;
	const char *groups; /* -g: GnuTLS group keywords, our order */
	bool one_share;     /* -g openssl: a key share for the first only */
	double timeout;
	int hold;    /* -H */
	double rate; /* -R bytes/s, 0: unlimited */
	struct pidset srv, backend;
	bool json;
	const char *url;
};

static struct opts o = {
	.conc = 1,
	.duration = 5,
	.status = 20,
	.body = -1,
	.timeout = 10,
};

static struct sockaddr_storage target;
static socklen_t targetlen;
static char host[256];
static char request[1100];
static size_t requestlen;
static gnutls_certificate_credentials_t cred;
static gnutls_priority_t prio;
static gnutls_datum_t ticket; /* -r: the session to resume */
static int ep;
static struct slot *slots;
static int nslots;
static unsigned char scratch[READ_CHUNK];

static struct {
	bool measuring;
	bool stopping; /* no new requests */
	uint64_t done; /* answered requests counted in the window */
	uint64_t started;
	uint64_t resumed;
	uint64_t handshakes;
	uint64_t hrr; /* HelloRetryRequests received */
	uint64_t errors[E_COUNT];
	double *lat;
	size_t nlat, caplat;
	double tokens; /* -R: bytes we may read now */
	double last_refill;
	int held;
	struct slot **restart; /* free slots to start after this batch */
	int nrestart;
} st;

static volatile sig_atomic_t interrupted;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("gemload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
usage(void)
{
	fputs("usage: gemload [-c conc] [-d seconds] [-w warmup] [-n count]\n"
	      "               [-s status] [-b body_bytes] [-t 1.2|1.3] [-r]\n"
	      "               [-g x25519|p256|openssl] [-T timeout] [-H "
	      "idle_conns]\n"
	      "               [-R read_bytes_per_s] [-p pid,...] [-P pid,...]\n"
	      "               [-j] gemini://127.0.0.1:PORT/path\n",
	    stderr);
	exit(2);
}

/*
 * Process accounting.
 */

/* user+sys of pid and its reaped children, in seconds; -1 if gone. */
static double
pid_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, stime, cut, cst;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past it. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* Fields 3..13 come first; utime is 14 (proc(5)). */
	if (sscanf(p + 2,
	        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu "
	        "%llu",
	        &ut, &stime, &cut, &cst) != 4)
		return -1;
	return (double)(ut + stime + cut + cst) / (double)sysconf(_SC_CLK_TCK);
}

static double
set_cpu(const struct pidset *ps)
{
	double sum = 0, c;
	int i;

	for (i = 0; i < ps->n; i++)
		if ((c = pid_cpu(ps->pid[i])) > 0)
			sum += c;
	return sum;
}

/* A /proc/PID/status field in KiB ("VmHWM", "VmRSS"); 0 if unknown. */
static long
pid_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Starts a new peak: "5" resets VmHWM to VmRSS (proc(5), Linux 4.0). */
static void
set_reset_peak(const struct pidset *ps)
{
	char path[64];
	int i, fd;

	for (i = 0; i < ps->n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/clear_refs",
		    (int)ps->pid[i]);
		if ((fd = open(path, O_WRONLY)) == -1)
			continue;
		(void)!write(fd, "5", 1);
		close(fd);
	}
}

static long
set_rss(const struct pidset *ps)
{
	long sum = 0;
	int i;

	for (i = 0; i < ps->n; i++)
		sum += pid_status_kib(ps->pid[i], "VmRSS");
	return sum;
}

/* Peak RSS per pid, summed: the larger of VmHWM and what we sampled. */
struct peak {
	long sampled[MAX_PIDS];
};

static void
peak_sample(struct peak *pk, const struct pidset *ps)
{
	long v;
	int i;

	for (i = 0; i < ps->n; i++)
		if ((v = pid_status_kib(ps->pid[i], "VmRSS")) > pk->sampled[i])
			pk->sampled[i] = v;
}

static long
peak_total(const struct peak *pk, const struct pidset *ps)
{
	long sum = 0, hwm;
	int i;

	for (i = 0; i < ps->n; i++) {
		hwm = pid_status_kib(ps->pid[i], "VmHWM");
		sum += hwm > pk->sampled[i] ? hwm : pk->sampled[i];
	}
	return sum;
}

/*
 * Arguments.
 */

static bool
loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	return false;
}

/* gemini://HOST[:PORT]/...: the address to connect to, loopback only. */
static void
parse_url(const char *url)
{
	const char *p, *end;
	char port[8] = "1965";
	size_t hl;
	long pn;
	struct sockaddr_in *sin = (void *)&target;
	struct sockaddr_in6 *sin6 = (void *)&target;

	if (strncmp(url, "gemini://", 9) != 0)
		die("%s: not a gemini:// URL", url);
	p = url + 9;
	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL)
			die("%s: unclosed [", url);
		hl = (size_t)(end - p - 1);
		if (hl >= sizeof(host))
			die("%s: host too long", url);
		memcpy(host, p + 1, hl);
		p = end + 1;
	} else {
		hl = strcspn(p, ":/?");
		if (hl >= sizeof(host))
			die("%s: host too long", url);
		memcpy(host, p, hl);
		p += hl;
	}
	host[hl] = '\0';
	if (*p == ':') {
		size_t pl = strcspn(p + 1, "/?");

		if (pl == 0 || pl >= sizeof(port))
			die("%s: bad port", url);
		memcpy(port, p + 1, pl);
		port[pl] = '\0';
	}
	pn = strtol(port, NULL, 10);
	if (pn <= 0 || pn > 65535)
		die("%s: bad port", url);
	memset(&target, 0, sizeof(target));
	if (strcmp(host, "localhost") == 0 ||
	    inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		if (strcmp(host, "localhost") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons((uint16_t)pn);
		targetlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pn);
		targetlen = sizeof(*sin6);
	} else {
		die("%s: the host must be an address or localhost (no DNS)",
		    url);
	}
	if (!loopback(&target))
		die("%s: refusing a non-loopback target", host);
	requestlen = (size_t)snprintf(request, sizeof(request), "%s\r\n", url);
	if (requestlen >= sizeof(request) || requestlen > 1026)
		die("URL over 1024 bytes");
}

static void
parse_pids(const char *arg, struct pidset *ps)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	long v;

	if (copy == NULL)
		die("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		v = strtol(tok, NULL, 10);
		if (v <= 0 || ps->n == MAX_PIDS)
			die("bad pid list '%s'", arg);
		ps->pid[ps->n++] = (pid_t)v;
	}
	free(copy);
}

static double
parse_num(const char *s, double lo, double hi, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= lo && v <= hi))
		die("%s: '%s' out of range [%g, %g]", what, s, lo, hi);
	return v;
}

/* OpenSSL 3.0's default list (ssl/t1_lib.c), less its FFDHE groups. */
#define OPENSSL_GROUPS                                                         \
	"+GROUP-X25519:+GROUP-SECP256R1:+GROUP-X448:+GROUP-SECP521R1:"         \
	"+GROUP-SECP384R1"

static void
parse_groups(const char *name)
{
	o.one_share = false;
	if (strcmp(name, "x25519") == 0)
		o.groups = "+GROUP-X25519";
	else if (strcmp(name, "p256") == 0)
		o.groups = "+GROUP-SECP256R1";
	else if (strcmp(name, "openssl") == 0) {
		o.groups = OPENSSL_GROUPS;
		o.one_share = true;
	} else
		usage();
}

static void
parse_args(int argc, char **argv)
{
	int ch;

	while (
	    (ch = getopt(argc, argv, "b:c:d:g:H:jn:p:P:rR:s:t:T:w:")) != -1) {
		switch (ch) {
		case 'b':
			o.body = (long long)parse_num(optarg, -1, 1e15, "-b");
			break;
		case 'c':
			o.conc = (int)parse_num(optarg, 1, MAX_CONC, "-c");
			break;
		case 'd':
			o.duration = parse_num(optarg, 0, MAX_SECONDS, "-d");
			break;
		case 'g':
			parse_groups(optarg);
			break;
		case 'H':
			o.hold = (int)parse_num(optarg, 1, MAX_CONC, "-H");
			break;
		case 'j':
			o.json = true;
			break;
		case 'n':
			o.count = (uint64_t)parse_num(optarg, 1, 1e9, "-n");
			break;
		case 'p':
			parse_pids(optarg, &o.srv);
			break;
		case 'P':
			parse_pids(optarg, &o.backend);
			break;
		case 'r':
			o.resume = true;
			break;
		case 'R':
			o.rate = parse_num(optarg, 1024, 1e12, "-R");
			break;
		case 's':
			o.status = (int)parse_num(optarg, 10, 69, "-s");
			break;
		case 't':
			if (strcmp(optarg, "1.2") != 0 && strcmp(optarg, "1.3"))
				usage();
			o.tls12 = strcmp(optarg, "1.2") == 0;
			break;
		case 'T':
			o.timeout = parse_num(optarg, 0.1, 600, "-T");
			break;
		case 'w':
			o.warmup = parse_num(optarg, 0, 600, "-w");
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	o.url = argv[optind];
	parse_url(o.url);
}

/* Enough descriptors for every slot, raising the hard limit if root. */
static void
raise_nofile(int want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur >= (rlim_t)want)
		return;
	if (rl.rlim_max < (rlim_t)want) {
		struct rlimit more = { (rlim_t)want, (rlim_t)want };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)want)
		die("RLIMIT_NOFILE %llu is below the %d descriptors needed",
		    (unsigned long long)rl.rlim_cur, want);
}

/*
 * TLS.
 */

static void
tls_setup(void)
{
	char pr[256];
	const char *errpos;
	int ret;

	if ((ret = gnutls_global_init()) < 0 ||
	    (ret = gnutls_certificate_allocate_credentials(&cred)) < 0)
		die("gnutls: %s", gnutls_strerror(ret));
	/* By default one group, so one key share: the cheapest ClientHello. */
	snprintf(pr, sizeof(pr), "NORMAL:-VERS-ALL:+VERS-TLS1.%c:-GROUP-ALL:%s",
	    o.tls12 ? '2' : '3', o.groups ? o.groups : "+GROUP-X25519");
	if ((ret = gnutls_priority_init(&prio, pr, &errpos)) < 0)
		die("gnutls priority %s: %s", pr, gnutls_strerror(ret));
}

/*
 * Connections.
 */

static void slot_start(struct slot *sl);

static void
slot_watch(struct slot *sl, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = sl };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, sl->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
}

/* Waits in the direction GnuTLS asked for after AGAIN. */
static void
slot_want(struct slot *sl)
{
	slot_watch(sl, gnutls_record_get_direction(sl->s) ? EPOLLOUT : EPOLLIN);
}

static void
slot_release(struct slot *sl)
{
	if (sl->s != NULL) {
		gnutls_deinit(sl->s);
		sl->s = NULL;
	}
	if (sl->fd != -1) {
		close(sl->fd);
		sl->fd = -1;
	}
	if (sl->state == S_HOLD)
		st.held--;
	sl->state = S_FREE;
}

static bool
may_start(void)
{
	if (st.stopping || interrupted)
		return false;
	return o.count == 0 || st.started < o.count;
}

static void
record_latency(double us)
{
	if (st.nlat == st.caplat) {
		size_t cap = st.caplat ? st.caplat * 2 : 65536;
		double *n = realloc(st.lat, cap * sizeof(*n));

		if (n == NULL)
			return; /* percentiles from what fits */
		st.lat = n;
		st.caplat = cap;
	}
	st.lat[st.nlat++] = us;
}

/* The request on sl has ended, well or not: count it, start the next. */
static void
slot_finish(struct slot *sl, int err)
{
	double t = now();

	if (st.measuring) {
		if (err >= 0)
			st.errors[err]++;
		else
			record_latency((t - sl->started) * 1e6);
		if (err < 0 || err >= E_HEADER)
			st.done++; /* answered, right or wrong */
	}
	slot_release(sl);
	/* Not started from here: a failing connect would recurse. */
	if (o.hold == 0 && !sl->queued) {
		sl->queued = true;
		st.restart[st.nrestart++] = sl;
	}
}

/* The session for the next resumption: the newest ticket we were given. */
static void
keep_ticket(struct slot *sl)
{
	gnutls_datum_t d;

	if (gnutls_session_get_data2(sl->s, &d) < 0)
		return;
	gnutls_free(ticket.data);
	ticket = d;
}

static void
slot_check_answer(struct slot *sl)
{
	if (o.resume && (!o.tls12 || !gnutls_session_is_resumed(sl->s)))
		keep_ticket(sl);
	if (!sl->header_done)
		slot_finish(sl, E_HEADER);
	else if (sl->status != o.status)
		slot_finish(sl, E_STATUS);
	else if (o.body >= 0 && sl->body != (uint64_t)o.body)
		slot_finish(sl, E_BODY);
	else
		slot_finish(sl, -1);
}

/* Takes the header line out of the first bytes; the rest is body. */
static bool
slot_header(struct slot *sl, const unsigned char *p, size_t n)
{
	size_t take = MAX_HEADER - sl->hlen;
	char *crlf;

	if (take > n)
		take = n;
	memcpy(sl->header + sl->hlen, p, take);
	sl->hlen += take;
	sl->header[sl->hlen] = '\0';
	crlf = memmem(sl->header, sl->hlen, "\r\n", 2);
	if (crlf == NULL)
		return sl->hlen < MAX_HEADER;
	if (crlf - sl->header < 2 || sl->header[0] < '1' ||
	    sl->header[0] > '6' || sl->header[1] < '0' || sl->header[1] > '9')
		return false;
	sl->status = (sl->header[0] - '0') * 10 + (sl->header[1] - '0');
	sl->header_done = true;
	/* What followed CRLF in this read is body, kept or not. */
	sl->body += sl->hlen - (size_t)(crlf + 2 - sl->header) + (n - take);
	return true;
}

static void
rate_refill(void)
{
	double t = now();

	st.tokens += (t - st.last_refill) * o.rate;
	if (st.tokens > o.rate / 10)
		st.tokens = o.rate / 10; /* at most 100 ms of burst */
	st.last_refill = t;
}

static void
slot_read(struct slot *sl)
{
	ssize_t n;

	for (;;) {
		size_t want = sizeof(scratch);

		if (o.rate > 0) {
			rate_refill();
			if (st.tokens <= 0) {
				sl->state = S_PAUSED;
				sl->resume_at = now() - st.tokens / o.rate;
				slot_watch(sl, 0);
				return;
			}
			if (want > 16384)
				want = 16384;
		}
		n = gnutls_record_recv(sl->s, scratch, want);
		if (n > 0) {
			if (o.rate > 0)
				st.tokens -= (double)n;
			if (sl->header_done)
				sl->body += (uint64_t)n;
			else if (!slot_header(sl, scratch, (size_t)n)) {
				slot_finish(sl, E_HEADER);
				return;
			}
			continue;
		}
		if (n == 0) { /* close_notify */
			slot_check_answer(sl);
			return;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			slot_want(sl);
			return;
		}
		slot_finish(sl,
		    n == GNUTLS_E_PREMATURE_TERMINATION ? E_TRUNCATED : E_READ);
		return;
	}
}

static void
slot_send(struct slot *sl)
{
	ssize_t n;

	/* After AGAIN, GnuTLS resends the record it has already built. */
	n = gnutls_record_send(sl->s, sl->retry ? NULL : request,
	    sl->retry ? 0 : requestlen);
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
		sl->retry = true;
		slot_want(sl);
		return;
	}
	if (n < 0) {
		slot_finish(sl, E_WRITE);
		return;
	}
	sl->state = S_READ;
	slot_read(sl);
}

static void
slot_handshake(struct slot *sl)
{
	int ret;

	sl->state = S_HANDSHAKE;
	do
		ret = gnutls_handshake(sl->s);
	while (ret == GNUTLS_E_WARNING_ALERT_RECEIVED);
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
		slot_want(sl);
		return;
	}
	if (ret < 0) {
		if (!o.json)
			fprintf(stderr, "gemload: handshake: %s\n",
			    gnutls_strerror(ret));
		slot_finish(sl, E_HANDSHAKE);
		return;
	}
	if (st.measuring) {
		st.handshakes++;
		if (gnutls_session_is_resumed(sl->s))
			st.resumed++;
	}
	if (o.resume && o.tls12 && !gnutls_session_is_resumed(sl->s))
		keep_ticket(sl);
	if (o.hold > 0) {
		sl->state = S_HOLD;
		st.held++;
		slot_watch(sl, EPOLLIN); /* only to see the server give up */
		return;
	}
	sl->state = S_SEND;
	sl->retry = false;
	slot_send(sl);
}

static int
count_hrr(gnutls_session_t s, unsigned int htype, unsigned when,
    unsigned int incoming, const gnutls_datum_t *msg)
{
	if (incoming && st.measuring)
		st.hrr++;
	return 0;
}

static int
slot_tls(struct slot *sl)
{
	if (gnutls_init(&sl->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
	                            (o.one_share ? GNUTLS_KEY_SHARE_TOP : 0)) <
	        0 ||
	    gnutls_priority_set(sl->s, prio) < 0 ||
	    gnutls_credentials_set(sl->s, GNUTLS_CRD_CERTIFICATE, cred) < 0)
		return -1;
	if (strcmp(host, "localhost") == 0)
		(void)gnutls_server_name_set(sl->s, GNUTLS_NAME_DNS, host,
		    strlen(host));
	if (o.resume && ticket.data != NULL)
		(void)gnutls_session_set_data(sl->s, ticket.data, ticket.size);
	gnutls_transport_set_int(sl->s, sl->fd);
	gnutls_handshake_set_timeout(sl->s, 0);
	gnutls_handshake_set_hook_function(sl->s,
	    GNUTLS_HANDSHAKE_HELLO_RETRY_REQUEST, GNUTLS_HOOK_POST, count_hrr);
	return 0;
}

static void
slot_start(struct slot *sl)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = sl };
	int one = 1;

	st.started++;
	sl->header[0] = '\0';
	sl->hlen = 0;
	sl->header_done = false;
	sl->status = 0;
	sl->body = 0;
	sl->started = now();
	sl->state = S_CONNECTING;
	sl->fd = socket(target.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sl->fd == -1) {
		fprintf(stderr, "gemload: socket: %s\n", strerror(errno));
		slot_finish(sl, E_CONNECT);
		return;
	}
	(void)setsockopt(sl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sl->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	if (slot_tls(sl) == -1) {
		slot_finish(sl, E_CONNECT);
		return;
	}
	if (connect(sl->fd, (struct sockaddr *)&target, targetlen) == -1 &&
	    errno != EINPROGRESS) {
		slot_finish(sl, E_CONNECT);
		return;
	}
	/* Loopback connects at once or soon; EPOLLOUT tells which. */
}

static void
slot_connected(struct slot *sl)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		slot_finish(sl, E_CONNECT);
		return;
	}
	slot_handshake(sl);
}

/*
 * Held and readable: a TLS 1.3 NewSessionTicket is fine (GnuTLS takes it
 * and says AGAIN); anything else means the server gave up on us.
 */
static void
slot_hold_event(struct slot *sl)
{
	ssize_t n = gnutls_record_recv(sl->s, scratch, sizeof(scratch));

	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
		return;
	slot_finish(sl, E_IDLE_CLOSED);
}

static void
slot_event(struct slot *sl)
{
	switch (sl->state) {
	case S_CONNECTING:
		slot_connected(sl);
		break;
	case S_HANDSHAKE:
		slot_handshake(sl);
		break;
	case S_SEND:
		slot_send(sl);
		break;
	case S_READ:
		slot_read(sl);
		break;
	case S_HOLD:
		slot_hold_event(sl);
		break;
	case S_PAUSED:
	case S_FREE:
		break;
	}
}

/* Every TICK_MS: time out stuck requests, resume paused readers. */
static void
slots_tick(double t)
{
	int i;

	for (i = 0; i < nslots; i++) {
		struct slot *sl = &slots[i];

		if (sl->state == S_PAUSED && t >= sl->resume_at) {
			sl->state = S_READ;
			slot_read(sl);
			continue;
		}
		if (sl->state != S_FREE && sl->state != S_HOLD &&
		    t - sl->started > o.timeout)
			slot_finish(sl, E_TIMEOUT);
	}
}

static int
active(void)
{
	int i, n = 0;

	for (i = 0; i < nslots; i++)
		n += slots[i].state != S_FREE;
	return n;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t i;

	if (st.nlat == 0)
		return 0;
	i = (size_t)ceil(p / 100 * (double)st.nlat);
	return st.lat[i == 0 ? 0 : i - 1];
}

/*
 * Starts the slots freed by this batch. A start that fails at once puts
 * its slot back at index nrestart, never past the one being read: each
 * entry adds at most one.
 */
static void
restart_slots(void)
{
	int i, n = st.nrestart;

	st.nrestart = 0;
	for (i = 0; i < n; i++) {
		struct slot *sl = st.restart[i];

		sl->queued = false;
		if (sl->state == S_FREE && may_start())
			slot_start(sl);
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Waits for events until stop() says so or the deadline passes. */
static void
loop(double deadline, bool (*stop)(void))
{
	struct epoll_event evs[256];
	double t, last_tick = now();
	int n, i, wait_ms;

	while (!stop() && (t = now()) < deadline) {
		wait_ms = o.rate > 0 ? 2 : TICK_MS;
		n = epoll_wait(ep, evs, 256, wait_ms);
		if (n == -1 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++)
			slot_event(evs[i].data.ptr);
		restart_slots();
		t = now();
		if (t - last_tick >= (o.rate > 0 ? 0.002 : TICK_MS / 1e3)) {
			slots_tick(t);
			last_tick = t;
		}
		if (interrupted)
			st.stopping = true;
	}
}

static double phase_end;

static bool
stop_at_phase_end(void)
{
	if (now() >= phase_end)
		return true;
	return o.count > 0 && st.started >= o.count && active() == 0;
}

static bool
stop_when_idle(void)
{
	return active() == 0;
}

static bool
stop_when_all_held(void)
{
	return st.held + (int)st.errors[E_CONNECT] +
	           (int)st.errors[E_HANDSHAKE] + (int)st.errors[E_TIMEOUT] +
	           (int)st.errors[E_IDLE_CLOSED] >=
	       o.hold;
}

static bool
stop_never(void)
{
	return interrupted;
}

struct result {
	double seconds, srv_cpu, backend_cpu, client_cpu;
	long srv_rss, backend_rss;
	long srv_rss_start; /* when the window opened: the peak's baseline */
	int held;
};

static double
self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
report(const struct result *r)
{
	uint64_t errs = 0;
	double per = st.done > 0 ? 1e6 / (double)st.done : 0;
	int i;

	for (i = 0; i < E_COUNT; i++)
		errs += st.errors[i];
	qsort(st.lat, st.nlat, sizeof(*st.lat), cmp_double);
	fprintf(stderr,
	    "%s: %llu answered in %.2f s: %.0f req/s, %llu errors\n"
	    "  latency ms: p50 %.3f p90 %.3f p99 %.3f max %.3f\n"
	    "  cpu us/req: server %.1f backend %.1f client %.1f\n"
	    "  peak rss KiB: server %ld (at start %ld) backend %ld",
	    o.url, (unsigned long long)st.done, r->seconds,
	    r->seconds > 0 ? (double)st.done / r->seconds : 0,
	    (unsigned long long)errs, pct(50) / 1e3, pct(90) / 1e3,
	    pct(99) / 1e3, st.nlat ? st.lat[st.nlat - 1] / 1e3 : 0,
	    r->srv_cpu * per, r->backend_cpu * per, r->client_cpu * per,
	    r->srv_rss, r->srv_rss_start, r->backend_rss);
	if (o.hold > 0)
		fprintf(stderr, ", %d connections held", r->held);
	if (o.resume)
		fprintf(stderr, ", resumed %llu/%llu",
		    (unsigned long long)st.resumed,
		    (unsigned long long)st.handshakes);
	fprintf(stderr, ", HelloRetryRequests %llu",
	    (unsigned long long)st.hrr);
	fputc('\n', stderr);
	for (i = 0; i < E_COUNT; i++)
		if (st.errors[i] > 0)
			fprintf(stderr, "  error %s: %llu\n", err_name[i],
			    (unsigned long long)st.errors[i]);
	if (!o.json)
		return;
	printf("{\"url\":\"%s\",\"conc\":%d,\"tls\":\"1.%c\",\"resume\":%s,"
	       "\"requests\":%llu,\"seconds\":%.4f,\"rps\":%.1f,"
	       "\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,"
	       "\"max_ms\":%.4f,\"server_cpu_s\":%.3f,"
	       "\"server_us_per_req\":%.2f,\"backend_cpu_s\":%.3f,"
	       "\"backend_us_per_req\":%.2f,\"client_us_per_req\":%.2f,"
	       "\"server_peak_rss_kib\":%ld,\"backend_peak_rss_kib\":%ld,"
	       "\"server_start_rss_kib\":%ld,"
	       "\"held\":%d,\"handshakes\":%llu,\"resumed\":%llu,\"hrr\":%llu,"
	       "\"errors\":%llu,\"error_kinds\":{",
	    o.url, o.hold > 0 ? o.hold : o.conc, o.tls12 ? '2' : '3',
	    o.resume ? "true" : "false", (unsigned long long)st.done,
	    r->seconds, r->seconds > 0 ? (double)st.done / r->seconds : 0,
	    pct(50) / 1e3, pct(90) / 1e3, pct(99) / 1e3,
	    st.nlat ? st.lat[st.nlat - 1] / 1e3 : 0, r->srv_cpu,
	    r->srv_cpu * per, r->backend_cpu, r->backend_cpu * per,
	    r->client_cpu * per, r->srv_rss, r->backend_rss, r->srv_rss_start,
	    r->held, (unsigned long long)st.handshakes,
	    (unsigned long long)st.resumed, (unsigned long long)st.hrr,
	    (unsigned long long)errs);
	for (i = 0; i < E_COUNT; i++)
		printf("%s\"%s\":%llu", i ? "," : "", err_name[i],
		    (unsigned long long)st.errors[i]);
	printf("}}\n");
}

/* Requests from every slot, the window after the warm-up measured. */
static void
run_load(struct result *r)
{
	double t0, c0, b0, s0;
	int i;

	phase_end = now() + o.warmup;
	if (o.warmup > 0) {
		for (i = 0; i < nslots && may_start(); i++)
			slot_start(&slots[i]);
		loop(phase_end + 0.001, stop_at_phase_end);
	}
	st.measuring = true;
	set_reset_peak(&o.srv);
	set_reset_peak(&o.backend);
	r->srv_rss_start = set_rss(&o.srv);
	t0 = now();
	c0 = set_cpu(&o.srv);
	b0 = set_cpu(&o.backend);
	s0 = self_cpu();
	phase_end =
	    t0 + (o.count > 0 && o.duration == 0 ? MAX_SECONDS : o.duration);
	if (o.count > 0)
		st.started = 0; /* the count starts with the window */
	for (i = 0; i < nslots && may_start(); i++)
		if (slots[i].state == S_FREE)
			slot_start(&slots[i]);
	{
		struct peak pk = { 0 }, bk = { 0 };
		double next = 0;

		/* Sample RSS on the side: a stream has no other checkpoint. */
		while (!stop_at_phase_end() && !interrupted) {
			double until = now() + 0.1;

			if (until > phase_end)
				until = phase_end;
			loop(until, stop_at_phase_end);
			if (now() >= next) {
				peak_sample(&pk, &o.srv);
				peak_sample(&bk, &o.backend);
				next = now() + 0.1;
			}
		}
		st.stopping = true;
		loop(now() + o.timeout + 1, stop_when_idle);
		r->seconds = now() - t0;
		r->srv_cpu = set_cpu(&o.srv) - c0;
		r->backend_cpu = set_cpu(&o.backend) - b0;
		r->client_cpu = self_cpu() - s0;
		r->srv_rss = peak_total(&pk, &o.srv);
		r->backend_rss = peak_total(&bk, &o.backend);
	}
}

/* -H: N connections through the handshake, held idle for -d seconds. */
static void
run_hold(struct result *r)
{
	struct peak pk = { 0 }, bk = { 0 };
	double t0 = now(), end;
	int i, next = 0;

	set_reset_peak(&o.srv);
	set_reset_peak(&o.backend);
	r->srv_rss_start = set_rss(&o.srv);
	st.measuring = true;
	/* At most -c handshakes in flight: a burst of 10,000 SYNs is a test
	 * of the accept queue, not of idle memory. */
	while (next < nslots && !interrupted && now() - t0 < MAX_SECONDS) {
		int inflight = 0;

		for (i = 0; i < next; i++)
			inflight += slots[i].state != S_FREE &&
			            slots[i].state != S_HOLD;
		while (inflight < o.conc && next < nslots) {
			slot_start(&slots[next++]);
			inflight++;
		}
		loop(now() + 0.01, stop_never);
		if (now() - t0 > o.timeout * 10)
			break;
	}
	loop(now() + o.timeout, stop_when_all_held);
	r->held = st.held;
	end = now() + o.duration;
	while (now() < end && !interrupted) {
		peak_sample(&pk, &o.srv);
		peak_sample(&bk, &o.backend);
		loop(now() + 0.1, stop_never);
	}
	peak_sample(&pk, &o.srv);
	r->srv_rss = peak_total(&pk, &o.srv);
	r->backend_rss = peak_total(&bk, &o.backend);
	r->seconds = now() - t0;
	for (i = 0; i < nslots; i++)
		if (slots[i].state == S_HOLD) {
			st.done++;
			slot_release(&slots[i]);
		}
}

int
main(int argc, char **argv)
{
	struct result r = { 0 };
	struct sigaction sa = { 0 };
	int i;

	parse_args(argc, argv);
	nslots = o.hold > 0 ? o.hold : o.conc;
	if (o.rate > 0 && o.hold == 0 && o.count == 0)
		o.count = 1;
	raise_nofile(nslots + 64);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	tls_setup();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	if ((slots = calloc((size_t)nslots, sizeof(*slots))) == NULL ||
	    (st.restart = calloc((size_t)nslots, sizeof(*st.restart))) == NULL)
		die("out of memory");
	for (i = 0; i < nslots; i++)
		slots[i].fd = -1;
	if (o.hold > 0)
		run_hold(&r);
	else
		run_load(&r);
	report(&r);
	for (i = 0; i < nslots; i++)
		slot_release(&slots[i]);
	free(slots);
	free(st.restart);
	free(st.lat);
	gnutls_free(ticket.data);
	gnutls_priority_deinit(prio);
	gnutls_certificate_free_credentials(cred);
	gnutls_global_deinit();
	for (i = 0; i < E_COUNT; i++)
		if (st.errors[i] > 0)
			return 1;
	return interrupted ? 1 : 0;
}
