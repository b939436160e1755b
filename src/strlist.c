/*
 * strlist.c - lists written as one string, "a, b c": the server's
 * hostnames and a backend's app_state_keys, split the same way.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

static bool
strlist_sep(char ch)
{
	return ch == ',' || isspace((unsigned char)ch);
}

char **
strlist_split(const char *s)
{
	/* n items take at least 2n - 1 bytes: s/2 + 1 of them at most. */
	char **list = calloc(strlen(s) / 2 + 2, sizeof(char *));
	size_t n = 0, len;

	if (list == NULL)
		return NULL;
	for (;;) {
		while (strlist_sep(*s))
			s++;
		for (len = 0; s[len] != '\0' && !strlist_sep(s[len]); len++)
			;
		if (len == 0)
			return list;
		if ((list[n++] = strndup(s, len)) == NULL) {
			strlist_free(list);
			return NULL;
		}
		s += len;
	}
}

void
strlist_free(char **list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; list[i] != NULL; i++)
		free(list[i]);
	free(list);
}
