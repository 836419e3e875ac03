/* hf_egress.h - the policy for outbound destinations: which addresses the
 * connections of http.* and webhook.emit may go to (`serve --egress-deny`,
 * `--egress-allow`).
 *
 * A policy is a list of address ranges, each refused (deny) or allowed. The
 * defaults refuse link-local (169.254.0.0/16, fe80::/10, which holds the cloud
 * metadata addresses) and unspecified (0.0.0.0/8, ::) addresses. An address
 * is refused when the most specific range that holds it is a deny range; an
 * allow range wins over a deny range of the same size or larger, so that
 * `--egress-deny private --egress-allow 127.0.0.1` lets 127.0.0.1 through and
 * `--egress-allow link-local` lifts that default. IPv4 ranges match IPv4
 * addresses, IPv6 ranges IPv6 ones; an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, in a range or as a destination) counts as IPv4.
 *
 * The callers check the address actually connected to (after DNS, on every
 * redirect), in libcurl's open-socket callback (lua_http.c, outbox.c). Pure:
 * parsing and matching only. A policy is immutable once parsed, so any thread
 * may read it. */
#ifndef HF_EGRESS_H
#define HF_EGRESS_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
struct hf_egress;

/* Builds a policy: the defaults, then the ranges of deny and allow (the
 * values of --egress-deny and --egress-allow: NULL or "" add nothing). A list
 * is comma-separated; an item is a CIDR range (10.0.0.0/8, fc00::/7), one
 * address (a /32 or /128), or a word: `private` (127.0.0.0/8, ::1, 10.0.0.0/8,
 * 172.16.0.0/12, 192.168.0.0/16, fc00::/7), `link-local` or `unspecified`.
 * Returns the policy, or NULL with a one-line message naming the flag in err
 * (a range with host bits set, such as 10.0.0.1/8, is an error). */
struct hf_egress *hf_egress_parse(const char *deny, const char *allow,
				  char *err, size_t errsize);
void hf_egress_free(struct hf_egress *p); /* accepts NULL */

/* Checks one address of len 4 (IPv4) or 16 (IPv6) bytes, network order.
 * NULL p is the default policy. Returns true when allowed; when refused,
 * *rule (if rule is not NULL) is the refusing rule's name: the word it came
 * from or its range ("10.0.0.0/8"), valid as long as p. */
bool hf_egress_allows(const struct hf_egress *p, const unsigned char *ip,
		      size_t len, const char **rule);

/* Checks the socket address a connection is about to be opened to (AF_INET
 * or AF_INET6; any other family is refused). NULL p is the default policy.
 * Returns true when allowed; when refused, writes
 * "destination ADDRESS refused (RULE)" into why. */
bool hf_egress_check(const struct hf_egress *p, const struct sockaddr *sa,
		     size_t salen, char *why, size_t whysize);

#endif
