/* egress.c - the policy for outbound destinations (hf_egress.h): parses the
 * lists of --egress-deny and --egress-allow into ranges and decides whether an
 * address may be connected to.
 *
 * A range is kept as its family's bytes (4 or 16), a prefix length and the
 * name reported when it refuses (the word it came from, or the range). An
 * IPv4-mapped IPv6 range or address is turned into IPv4 first, so it meets
 * the IPv4 ranges only. Matching is a scan for the longest prefix, allow
 * winning ties: lists are short (HF_EGRESS_MAX_RULES).
 *
 * Pure: no sockets, no third-party headers. A policy is immutable after
 * hf_egress_parse, so any thread may check against it; the default policy is
 * built once (pthread_once) and lives as long as the process. Neighbours:
 * lua_http.c and outbox.c (the callers, in libcurl's open-socket callback),
 * cmd_serve.c and cmd_run.c (the flags). */
#include "hf_egress.h"
#include "hf_limits.h"
#include "hf_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define NAME_SIZE 64

struct rule {
	unsigned char net[16]; /* the first len bytes */
	unsigned char len;     /* 4 or 16 */
	unsigned char prefix;  /* bits, 0..8 * len */
	bool allow;
	char name[NAME_SIZE]; /* a word, or the range as text */
};

struct hf_egress {
	struct rule *rules;
	size_t n, cap;
};

/* The words a list may use, and their ranges. */
static const struct {
	const char *word;
	const char *ranges;
} words[] = {
    {"link-local", "169.254.0.0/16,fe80::/10"},
    {"unspecified", "0.0.0.0/8,::/128"},
    {"private", "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,"
		"192.168.0.0/16,fc00::/7"},
};

/* Refused unless allowed. */
static const char defaults[] = "link-local,unspecified";

static const unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0,	  0,
						0, 0, 0, 0, 0xff, 0xff};

/* An IPv4-mapped IPv6 address becomes its IPv4 address: *ip and *len are
 * moved to the last four bytes. */
static void unmap(const unsigned char **ip, size_t *len)
{
	if (*len == 16 && memcmp(*ip, mapped_prefix, 12) == 0) {
		*ip += 12;
		*len = 4;
	}
}

static bool in_rule(const struct rule *r, const unsigned char *ip, size_t len)
{
	if (r->len != len)
		return false;
	unsigned full = r->prefix / 8u, rest = r->prefix % 8u;
	if (memcmp(r->net, ip, full) != 0)
		return false;
	unsigned char mask = (unsigned char)(0xffu << (8u - rest));
	return rest == 0 || ((r->net[full] ^ ip[full]) & mask) == 0;
}

/* True when bits past the prefix are set. */
static bool host_bits(const struct rule *r)
{
	for (unsigned bit = r->prefix; bit < r->len * 8u; bit++)
		if (r->net[bit / 8] & (0x80u >> (bit % 8)))
			return true;
	return false;
}

static void clear_host_bits(struct rule *r)
{
	for (unsigned bit = r->prefix; bit < r->len * 8u; bit++)
		r->net[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
}

static void format_range(const struct rule *r, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN];
	inet_ntop(r->len == 4 ? AF_INET : AF_INET6, r->net, addr, sizeof addr);
	snprintf(out, size, "%s/%u", addr, (unsigned)r->prefix);
}

/* Parses "ADDRESS[/PREFIX]" into r (without its name). Returns 0, -1 when it
 * is not a range, -2 when host bits are set. */
static int parse_range(const char *text, struct rule *r)
{
	char buf[NAME_SIZE];
	if (strlen(text) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(r, 0, sizeof *r);
	if (inet_pton(AF_INET, buf, r->net) == 1)
		r->len = 4;
	else if (inet_pton(AF_INET6, buf, r->net) == 1)
		r->len = 16;
	else
		return -1;
	unsigned prefix = r->len * 8u;
	if (slash) {
		const char *p = slash + 1;
		size_t nd = strspn(p, "0123456789");
		if (nd == 0 || nd > 3 || p[nd] != '\0')
			return -1;
		prefix = (unsigned)strtoul(p, NULL, 10);
		if (prefix > r->len * 8u)
			return -1;
	}
	r->prefix = (unsigned char)prefix;
	if (r->len == 16 && prefix >= 96 &&
	    memcmp(r->net, mapped_prefix, 12) == 0) {
		memmove(r->net, r->net + 12, 4);
		memset(r->net + 4, 0, 12);
		r->len = 4;
		r->prefix = (unsigned char)(prefix - 96);
	}
	return host_bits(r) ? -2 : 0;
}

static void add_rule(struct hf_egress *p, const struct rule *r)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->rules = hf_xrealloc(p->rules, p->cap * sizeof *p->rules);
	}
	p->rules[p->n++] = *r;
}

/* Adds one range item. Returns 0, or -1 with err set. */
static int add_range(struct hf_egress *p, const char *item, bool allow,
		     const char *word, const char *flag, char *err,
		     size_t errsize)
{
	struct rule r;
	int rc = parse_range(item, &r);
	if (rc == -1) {
		snprintf(err, errsize,
			 "--egress-%s: '%s' is not an address range (such as "
			 "10.0.0.0/8, fd00::/8, or private, link-local, "
			 "unspecified)",
			 flag, item);
		return -1;
	}
	if (rc == -2) {
		char fixed[NAME_SIZE + 8];
		clear_host_bits(&r);
		format_range(&r, fixed, sizeof fixed);
		snprintf(err, errsize,
			 "--egress-%s: '%s' has bits set past its prefix (did "
			 "you mean %s?)",
			 flag, item, fixed);
		return -1;
	}
	r.allow = allow;
	if (word)
		snprintf(r.name, sizeof r.name, "%s", word);
	else
		format_range(&r, r.name, sizeof r.name);
	add_rule(p, &r);
	return 0;
}

/* Adds the ranges of one comma-separated list. word names the ranges when
 * the list is a word's. Returns 0, or -1 with err set. */
static int add_list(struct hf_egress *p, const char *list, bool allow,
		    const char *word, const char *flag, char *err,
		    size_t errsize)
{
	for (const char *at = list;; at += strcspn(at, ",") + 1) {
		const char *s = at;
		size_t n = strcspn(s, ",");
		char item[NAME_SIZE];
		while (n && (*s == ' ' || *s == '\t'))
			s++, n--;
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == 0 || n >= sizeof item) {
			snprintf(err, errsize,
				 "--egress-%s: %s item in '%.200s'", flag,
				 n ? "an overlong" : "an empty", list);
			return -1;
		}
		memcpy(item, s, n);
		item[n] = '\0';
		size_t w = 0, nw = sizeof words / sizeof words[0];
		while (w < nw && strcasecmp(item, words[w].word) != 0)
			w++;
		if (w < nw) {
			if (add_list(p, words[w].ranges, allow, words[w].word,
				     flag, err, errsize) < 0)
				return -1;
		} else if (add_range(p, item, allow, word, flag, err, errsize) <
			   0) {
			return -1;
		}
		if (p->n > HF_EGRESS_MAX_RULES) {
			snprintf(err, errsize,
				 "--egress-%s: more than %d ranges", flag,
				 HF_EGRESS_MAX_RULES);
			return -1;
		}
		if (at[strcspn(at, ",")] == '\0')
			return 0;
	}
}

struct hf_egress *hf_egress_parse(const char *deny, const char *allow,
				  char *err, size_t errsize)
{
	struct hf_egress *p = hf_xcalloc(1, sizeof *p);
	if (add_list(p, defaults, false, NULL, "deny", err, errsize) < 0 ||
	    (deny && *deny &&
	     add_list(p, deny, false, NULL, "deny", err, errsize) < 0) ||
	    (allow && *allow &&
	     add_list(p, allow, true, NULL, "allow", err, errsize) < 0)) {
		hf_egress_free(p);
		return NULL;
	}
	return p;
}

void hf_egress_free(struct hf_egress *p)
{
	if (!p)
		return;
	free(p->rules);
	free(p);
}

static struct hf_egress *default_policy;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
	char err[256];
	default_policy = hf_egress_parse(NULL, NULL, err, sizeof err);
}

bool hf_egress_allows(const struct hf_egress *p, const unsigned char *ip,
		      size_t len, const char **rule)
{
	if (!p) {
		pthread_once(&default_once, make_default);
		p = default_policy;
	}
	unmap(&ip, &len);
	const struct rule *deny = NULL, *allow = NULL;
	for (size_t i = 0; i < p->n; i++) {
		const struct rule *r = &p->rules[i];
		if (!in_rule(r, ip, len))
			continue;
		const struct rule **best = r->allow ? &allow : &deny;
		if (!*best || r->prefix > (*best)->prefix)
			*best = r;
	}
	if (!deny || (allow && allow->prefix >= deny->prefix))
		return true;
	if (rule)
		*rule = deny->name;
	return false;
}

bool hf_egress_check(const struct hf_egress *p, const struct sockaddr *sa,
		     size_t salen, char *why, size_t whysize)
{
	const unsigned char *ip = NULL;
	size_t len = 0;
	if (sa && sa->sa_family == AF_INET &&
	    salen >= sizeof(struct sockaddr_in)) {
		ip = (const unsigned char *)&((const struct sockaddr_in *)sa)
			 ->sin_addr;
		len = 4;
	} else if (sa && sa->sa_family == AF_INET6 &&
		   salen >= sizeof(struct sockaddr_in6)) {
		ip = (const unsigned char *)&((const struct sockaddr_in6 *)sa)
			 ->sin6_addr;
		len = 16;
	} else {
		snprintf(why, whysize,
			 "destination refused (not an IPv4 or IPv6 address)");
		return false;
	}
	const char *rule = NULL;
	if (hf_egress_allows(p, ip, len, &rule))
		return true;
	char addr[INET6_ADDRSTRLEN];
	unmap(&ip, &len);
	inet_ntop(len == 4 ? AF_INET : AF_INET6, ip, addr, sizeof addr);
	snprintf(why, whysize, "destination %s refused (%s)", addr, rule);
	return false;
}
