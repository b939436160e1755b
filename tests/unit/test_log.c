/*
 * log.c: escaping of untrusted bytes, the three access styles, log_ip,
 * the query left out, levels on error lines, a file reopened by name.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xitzin.h"
#include "xz_private.h"

static char dir[] = "/tmp/xitzin-test-log-XXXXXX";
static char path[64], moved[64];

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	snprintf(moved, sizeof(moved), "%s/log.1", dir);
	xz_log_enable(false);
}

static void
teardown(void)
{
	xz_log_close();
	unlink(path);
	unlink(moved);
	rmdir(dir);
}

TestSuite(log, .init = setup, .fini = teardown);

static char *
slurp(const char *p)
{
	static char buf[8192];
	FILE *f = fopen(p, "r");
	size_t n;

	cr_assert_not_null(f, "%s", p);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char *
esc(const char *in, size_t len, bool quote)
{
	static char out[256];

	log_escape(out, sizeof(out), in, len, quote);
	return out;
}

Test(log, escapes_untrusted_bytes)
{
	cr_expect_str_eq(esc("a\rb\nc\td", 7, true), "a\\rb\\nc\\td");
	cr_expect_str_eq(esc("\x1b[2J", 4, true), "\\x1b[2J");
	cr_expect_str_eq(esc("say \"hi\" \\", 10, true), "say \\\"hi\\\" \\\\");
	cr_expect_str_eq(esc("say \"hi\"", 8, false), "say \"hi\"");
	cr_expect_str_eq(esc("nul\0x", 5, true), "nul\\x00x");
	cr_expect_str_eq(esc("\x7f", 1, true), "\\x7f");
	/* Valid UTF-8 stays readable; broken, overlong, surrogate, C1 and
	 * bidi controls do not pass. */
	cr_expect_str_eq(esc("caf\xc3\xa9", 5, true), "caf\xc3\xa9");
	cr_expect_str_eq(esc("\xff\xfe", 2, true), "\\xff\\xfe");
	cr_expect_str_eq(esc("\xc3", 1, true), "\\xc3");
	cr_expect_str_eq(esc("\xc0\xaf", 2, true), "\\xc0\\xaf");
	cr_expect_str_eq(esc("\xed\xa0\x80", 3, true), "\\xed\\xa0\\x80");
	cr_expect_str_eq(esc("\xc2\x9b", 2, true), "\\xc2\\x9b");
	cr_expect_str_eq(esc("\xe2\x80\xae", 3, true), "\\xe2\\x80\\xae");
	cr_expect_str_eq(esc("\xf0\x9f\x99\x82", 4, true), "\xf0\x9f\x99\x82");
}

Test(log, escape_never_overflows_nor_splits_an_escape)
{
	char out[6];

	cr_expect_eq(log_escape(out, sizeof(out), "ab\r\r", 4, true), 4);
	cr_expect_str_eq(out, "ab\\r");
	cr_expect_eq(log_escape(out, sizeof(out), "\x1b\x1b", 2, true), 4);
	cr_expect_str_eq(out, "\\x1b");
	cr_expect_eq(log_escape(out, 1, "abc", 3, true), 0);
	cr_expect_str_eq(out, "");
}

static void
open_logs(enum xz_log_style style, enum xz_log_ip ip, bool no_query)
{
	struct xz_log_opts o = { .access_log = path,
		.error_log = path,
		.style = style,
		.ip = ip,
		.no_query = no_query };
	char err[256];

	cr_assert_eq(xz_log_open(&o, err, sizeof(err)), XZ_OK, "%s", err);
}

static const struct access_entry hostile = { .addr = "192.0.2.77",
	.url = "gemini://localhost/a\"b\r\x1b[31mFORGED\xff?q=secret",
	.sni = "evil\x1b.example",
	.cert_hash = "SHA256:ab12",
	.status = 51,
	.bytes = 14,
	.ms = 1.25 };

Test(log, xitzin_style_escapes_and_has_sni_and_cert)
{
	char *line;

	open_logs(XZ_LOG_XITZIN, XZ_LOG_IP_FULL, false);
	log_access_entry(&hostile);
	line = slurp(path);
	/* 2026-01-02T03:04:05Z first (a file: our own timestamp). */
	cr_expect_eq(line[4], '-');
	cr_expect_eq(line[19], 'Z');
	cr_expect_str_eq(line + 21,
	    "192.0.2.77 \"gemini://localhost/a\\\"b\\r\\x1b[31mFORGED\\xff"
	    "?q=secret\" 51 14 evil\\x1b.example SHA256:ab12 1.2ms\n");
	cr_expect_null(strchr(line, '\r'));
	cr_expect_null(strchr(line, '\x1b'));
}

Test(log, xitzin_style_dashes_for_no_sni_no_cert)
{
	struct access_entry e = { .addr = "::1",
		.url = "gemini://h/",
		.status = 20,
		.reason = "peer closed" };

	open_logs(XZ_LOG_XITZIN, XZ_LOG_IP_FULL, false);
	log_access_entry(&e);
	cr_expect(
	    strstr(slurp(path),
	        " ::1 \"gemini://h/\" 20 0 - - 0.0ms peer closed\n") != NULL);
}

Test(log, common_and_combined)
{
	char *line;

	open_logs(XZ_LOG_COMMON, XZ_LOG_IP_FULL, true);
	log_access_entry(&hostile);
	line = slurp(path);
	cr_expect_eq(strncmp(line, "192.0.2.77 - - [", 16), 0, "%s", line);
	cr_expect(strstr(line, " +0000] \"gemini://localhost/a\\\"b\\r\\x1b"
	                       "[31mFORGED\\xff\" 51 14\n") != NULL,
	    "%s", line);
	xz_log_close();
	unlink(path);
	open_logs(XZ_LOG_COMBINED, XZ_LOG_IP_FULL, false);
	log_access_entry(&hostile);
	line = slurp(path);
	cr_expect(strstr(line, "?q=secret\" 51 14 \"-\" \"-\"\n") != NULL, "%s",
	    line);
}

Test(log, client_address_truncated_or_off)
{
	struct access_entry e = hostile;
	char *line;

	open_logs(XZ_LOG_COMMON, XZ_LOG_IP_TRUNCATED, false);
	log_access_entry(&e);
	e.addr = "2001:db8:1234:5678::9";
	log_access_entry(&e);
	xz_log_close();
	line = slurp(path);
	cr_expect_eq(strncmp(line, "192.0.2.0 - - [", 15), 0, "%s", line);
	cr_expect(strstr(line, "\n2001:db8:1234:: - - [") != NULL, "%s", line);
	cr_expect_null(strstr(line, "77"));
	cr_expect_null(strstr(line, "5678"));
	unlink(path);
	open_logs(XZ_LOG_COMMON, XZ_LOG_IP_OFF, false);
	log_access_entry(&hostile);
	cr_expect_eq(strncmp(slurp(path), "- - - [", 7), 0);
}

Test(log, error_lines_have_a_level_and_are_escaped)
{
	char *line;

	open_logs(XZ_LOG_XITZIN, XZ_LOG_IP_FULL, false);
	log_warnx("conn 1: bad host %s", "x\r\x1b]0;owned\x07");
	log_info("listening");
	line = slurp(path);
	cr_expect(strstr(line, "Z xitzin: warning: conn 1: bad host "
	                       "x\\r\\x1b]0;owned\\x07\n") != NULL,
	    "%s", line);
	cr_expect(strstr(line, "Z xitzin: info: listening\n") != NULL, "%s",
	    line);
}

Test(log, reopen_follows_the_name)
{
	open_logs(XZ_LOG_XITZIN, XZ_LOG_IP_FULL, false);
	log_info("before");
	cr_assert_eq(rename(path, moved), 0);
	log_info("still old");
	cr_expect_eq(xz_log_reopen(), XZ_OK);
	log_info("after");
	cr_expect(strstr(slurp(moved), "still old") != NULL);
	cr_expect_null(strstr(slurp(moved), "after"));
	cr_expect(strstr(slurp(path), "after") != NULL);
}

Test(log, off_writes_nothing_and_bad_file_is_named)
{
	struct xz_log_opts o = { .access_log = "off", .error_log = path };
	struct xz_log_opts bad = { .error_log = "/nonexistent/dir/log" };
	char err[256];

	cr_assert_eq(xz_log_open(&o, err, sizeof(err)), XZ_OK);
	log_access_entry(&hostile);
	cr_expect_str_eq(slurp(path), "");
	cr_expect_eq(xz_log_open(&bad, err, sizeof(err)), XZ_EIO);
	cr_expect_str_eq(err,
	    "log file /nonexistent/dir/log: No such file or directory");
}
