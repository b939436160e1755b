/*
 * site.c - the sites (virtual hosts) one server serves: each is a set of
 * names, an app and a certificate. The TLS layer asks which certificate
 * a ClientHello's SNI gets (site_pick_cert), the connection which site a
 * request's host belongs to (site_for_name), as the original framework's
 * vhost mapping did: exact names first, then single-label "*." wildcards,
 * then a "*" site for any host; a name no site has is answered 53.
 *
 * The set is built before the workers start and only read afterwards,
 * so the workers share it without a lock. Sites are few: a linear scan
 * costs less than the hash of one handshake message.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

struct site_set {
	struct site *sites; /* sites[0] is the default */
	size_t n;
};

struct site_set *
site_set_new(void)
{
	return calloc(1, sizeof(struct site_set));
}

void
site_set_free(struct site_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++) {
		strlist_free(set->sites[i].names);
		tls_cert_free(set->sites[i].cert);
	}
	free(set->sites);
	free(set);
}

size_t
site_set_count(const struct site_set *set)
{
	return set->n;
}

const struct site *
site_set_get(const struct site_set *set, size_t i)
{
	return i < set->n ? &set->sites[i] : NULL;
}

/* Lower-cased, a final dot dropped ("Example.ORG." is "example.org"). */
static void
site_norm(char *name)
{
	size_t len = strlen(name);

	for (char *q = name; *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
	if (len > 1 && name[len - 1] == '.')
		name[len - 1] = '\0';
}

/*
 * "*" alone, or "*." and a name without '*': a wildcard stands for one
 * whole label (RFC 6125, 6.4.3, as browsers and Agate read it).
 */
static const char *
site_name_check(const char *name)
{
	const char *star = strchr(name, '*');

	if (name[0] == '.' || strstr(name, "..") != NULL)
		return "an empty label";
	if (star == NULL || strcmp(name, "*") == 0)
		return NULL;
	if (star != name || name[1] != '.' || name[2] == '\0' ||
	    strchr(name + 1, '*') != NULL)
		return "a wildcard is '*.' and a name (one label)";
	return NULL;
}

/* The site holding exactly name (already normalised), or NULL. */
static const struct site *
site_exact(const struct site_set *set, const char *name, size_t len)
{
	size_t i, j;

	for (i = 0; i < set->n; i++)
		for (j = 0; set->sites[i].names[j] != NULL; j++)
			if (strlen(set->sites[i].names[j]) == len &&
			    strncmp(set->sites[i].names[j], name, len) == 0)
				return &set->sites[i];
	return NULL;
}

static int
site_fail(int rc, const char *reason, const char *name, const char **why,
    char *bad, size_t badlen)
{
	*why = reason;
	if (badlen > 0)
		snprintf(bad, badlen, "%s", name != NULL ? name : "");
	return rc;
}

int
site_set_add(struct site_set *set, const char *names, struct xz_app *app,
    struct tls_cert *cert, const char **why, char *bad, size_t badlen)
{
	char **list = strlist_split(names != NULL ? names : "");
	struct site *s;
	const char *reason;
	size_t i, j;
	int rc;

	if (badlen > 0)
		bad[0] = '\0';
	if (list == NULL) {
		tls_cert_free(cert);
		return site_fail(XZ_ENOMEM, "out of memory", NULL, why, bad,
		    badlen);
	}
	rc = list[0] == NULL ?
	         site_fail(XZ_EINVAL, "no name given", NULL, why, bad, badlen) :
	         XZ_OK;
	for (i = 0; rc == XZ_OK && list[i] != NULL; i++) {
		site_norm(list[i]);
		if ((reason = site_name_check(list[i])) != NULL)
			rc = site_fail(XZ_EINVAL, reason, list[i], why, bad,
			    badlen);
		else if (site_exact(set, list[i], strlen(list[i])) != NULL)
			rc = site_fail(XZ_EINVAL, "a name is in two sites",
			    list[i], why, bad, badlen);
		for (j = 0; rc == XZ_OK && j < i; j++)
			if (strcmp(list[i], list[j]) == 0)
				rc = site_fail(XZ_EINVAL, "a name given twice",
				    list[i], why, bad, badlen);
	}
	if (rc == XZ_OK &&
	    (s = realloc(set->sites, (set->n + 1) * sizeof(*s))) == NULL)
		rc = site_fail(XZ_ENOMEM, "out of memory", NULL, why, bad,
		    badlen);
	if (rc != XZ_OK) {
		strlist_free(list);
		tls_cert_free(cert);
		return rc;
	}
	set->sites = s;
	s[set->n].names = list;
	s[set->n].app = app;
	s[set->n].cert = cert;
	set->n++;
	return XZ_OK;
}

const struct site *
site_for_name(const struct site_set *set, const char *host)
{
	char name[256], wild[258];
	const struct site *s;
	const char *dot;
	size_t len;

	if (host == NULL || (len = strlen(host)) == 0 || len >= sizeof(name))
		return NULL;
	memcpy(name, host, len + 1);
	site_norm(name);
	len = strlen(name);
	if ((s = site_exact(set, name, len)) != NULL)
		return s;
	/* "a.example.org" -> "*.example.org": one label, never more. */
	if ((dot = strchr(name, '.')) != NULL && dot > name && dot[1] != '\0') {
		snprintf(wild, sizeof(wild), "*%s", dot);
		if ((s = site_exact(set, wild, strlen(wild))) != NULL)
			return s;
	}
	return site_exact(set, "*", 1);
}

const struct site *
site_for_sni(const struct site_set *set, const char *sni)
{
	const struct site *s = sni != NULL ? site_for_name(set, sni) : NULL;

	return s != NULL ? s : set->n > 0 ? &set->sites[0] : NULL;
}

struct tls_cert *
site_pick_cert(void *arg, const char *sni)
{
	const struct site *s = site_for_sni(arg, sni);

	return s != NULL ? s->cert : NULL;
}
