/* test_egress.c - the policy for outbound destinations: the defaults, IPv4
 * and IPv6 ranges, IPv4-mapped addresses, the words, allow over deny, the
 * messages of bad lists and of a refused socket address. */
#include "hf_egress.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

/* "ok" when p allows addr, else the refusing rule's name. */
static const char *verdict(const struct hf_egress *p, const char *addr)
{
	unsigned char ip[16];
	size_t len = 4;
	if (inet_pton(AF_INET, addr, ip) != 1) {
		if (inet_pton(AF_INET6, addr, ip) != 1)
			return "bad test address";
		len = 16;
	}
	const char *rule = NULL;
	return hf_egress_allows(p, ip, len, &rule) ? "ok" : rule;
}

static struct hf_egress *parse(const char *deny, const char *allow)
{
	char err[256];
	struct hf_egress *p = hf_egress_parse(deny, allow, err, sizeof err);
	if (!p)
		fprintf(stderr, "unexpected: %s\n", err);
	return p;
}

static void test_defaults(void)
{
	struct hf_egress *p = parse(NULL, NULL);
	CHECK(p != NULL);
	for (int i = 0; i < 2; i++) {
		const struct hf_egress *q = i ? p : NULL; /* NULL: defaults */
		CHECK_STR(verdict(q, "169.254.169.254"), "link-local");
		CHECK_STR(verdict(q, "169.254.0.0"), "link-local");
		CHECK_STR(verdict(q, "fe80::1"), "link-local");
		CHECK_STR(verdict(q, "febf::1"), "link-local");
		CHECK_STR(verdict(q, "fd00:ec2::254"), "ok");
		CHECK_STR(verdict(q, "0.0.0.0"), "unspecified");
		CHECK_STR(verdict(q, "0.1.2.3"), "unspecified");
		CHECK_STR(verdict(q, "::"), "unspecified");
		CHECK_STR(verdict(q, "::ffff:169.254.169.254"), "link-local");
		CHECK_STR(verdict(q, "::ffff:0.0.0.0"), "unspecified");
		CHECK_STR(verdict(q, "127.0.0.1"), "ok");
		CHECK_STR(verdict(q, "::1"), "ok");
		CHECK_STR(verdict(q, "10.1.2.3"), "ok");
		CHECK_STR(verdict(q, "169.253.255.255"), "ok");
		CHECK_STR(verdict(q, "169.255.0.0"), "ok");
		CHECK_STR(verdict(q, "93.184.216.34"), "ok");
		CHECK_STR(verdict(q, "2001:db8::1"), "ok");
		CHECK_STR(verdict(q, "fec0::1"), "ok");
	}
	hf_egress_free(p);
}

static void test_private(void)
{
	struct hf_egress *p = parse("private", NULL);
	CHECK_STR(verdict(p, "127.0.0.1"), "private");
	CHECK_STR(verdict(p, "127.255.255.254"), "private");
	CHECK_STR(verdict(p, "10.0.0.1"), "private");
	CHECK_STR(verdict(p, "172.16.0.1"), "private");
	CHECK_STR(verdict(p, "172.31.255.255"), "private");
	CHECK_STR(verdict(p, "172.32.0.0"), "ok");
	CHECK_STR(verdict(p, "172.15.255.255"), "ok");
	CHECK_STR(verdict(p, "192.168.1.1"), "private");
	CHECK_STR(verdict(p, "192.169.0.1"), "ok");
	CHECK_STR(verdict(p, "::1"), "private");
	CHECK_STR(verdict(p, "::2"), "ok");
	CHECK_STR(verdict(p, "fc00::1"), "private");
	CHECK_STR(verdict(p, "fdff:ffff::1"), "private");
	CHECK_STR(verdict(p, "fe00::1"), "ok");
	CHECK_STR(verdict(p, "::ffff:127.0.0.1"), "private");
	CHECK_STR(verdict(p, "::ffff:10.9.8.7"), "private");
	CHECK_STR(verdict(p, "169.254.169.254"), "link-local");
	CHECK_STR(verdict(p, "8.8.8.8"), "ok");
	hf_egress_free(p);
}

static void test_ranges(void)
{
	struct hf_egress *p =
	    parse(" 198.51.100.0/24 , 2001:db8::/32,203.0.113.7", NULL);
	CHECK_STR(verdict(p, "198.51.100.200"), "198.51.100.0/24");
	CHECK_STR(verdict(p, "198.51.101.1"), "ok");
	CHECK_STR(verdict(p, "2001:db8:1::5"), "2001:db8::/32");
	CHECK_STR(verdict(p, "2001:db9::5"), "ok");
	CHECK_STR(verdict(p, "203.0.113.7"), "203.0.113.7/32");
	CHECK_STR(verdict(p, "203.0.113.8"), "ok");
	hf_egress_free(p);
	/* Odd prefixes: the bits inside a byte. */
	p = parse("10.128.0.0/9,fe00::/7", NULL);
	CHECK_STR(verdict(p, "10.127.255.255"), "ok");
	CHECK_STR(verdict(p, "10.128.0.0"), "10.128.0.0/9");
	CHECK_STR(verdict(p, "10.255.0.1"), "10.128.0.0/9");
	CHECK_STR(verdict(p, "ff00::1"), "fe00::/7");
	CHECK_STR(verdict(p, "fd00::1"), "ok");
	hf_egress_free(p);
	/* Everything, and its edge: /0. IPv4 ranges never match IPv6 and the
	 * other way round, mapped addresses being IPv4. */
	p = parse("0.0.0.0/0", NULL);
	CHECK_STR(verdict(p, "8.8.8.8"), "0.0.0.0/0");
	CHECK_STR(verdict(p, "::ffff:8.8.8.8"), "0.0.0.0/0");
	CHECK_STR(verdict(p, "2001:db8::1"), "ok");
	hf_egress_free(p);
	p = parse("::/0", NULL);
	CHECK_STR(verdict(p, "2001:db8::1"), "::/0");
	CHECK_STR(verdict(p, "8.8.8.8"), "ok");
	CHECK_STR(verdict(p, "::ffff:8.8.8.8"), "ok");
	hf_egress_free(p);
	/* A mapped range is an IPv4 range. */
	p = parse("::ffff:192.0.2.0/120", NULL);
	CHECK_STR(verdict(p, "192.0.2.9"), "192.0.2.0/24");
	CHECK_STR(verdict(p, "::ffff:192.0.2.9"), "192.0.2.0/24");
	CHECK_STR(verdict(p, "192.0.3.9"), "ok");
	hf_egress_free(p);
}

static void test_precedence(void)
{
	/* An allowed range wins over a deny range that holds it. */
	struct hf_egress *p = parse("private", "127.0.0.1/32");
	CHECK_STR(verdict(p, "127.0.0.1"), "ok");
	CHECK_STR(verdict(p, "::ffff:127.0.0.1"), "ok");
	CHECK_STR(verdict(p, "127.0.0.2"), "private");
	CHECK_STR(verdict(p, "::1"), "private");
	hf_egress_free(p);
	/* ... and over one of the same size: lifting a default. */
	p = parse(NULL, "link-local");
	CHECK_STR(verdict(p, "169.254.169.254"), "ok");
	CHECK_STR(verdict(p, "fe80::1"), "ok");
	CHECK_STR(verdict(p, "0.0.0.0"), "unspecified");
	hf_egress_free(p);
	/* A wider allow does not lift a narrower deny. */
	p = parse("10.1.0.0/16", "10.0.0.0/8,0.0.0.0/0");
	CHECK_STR(verdict(p, "10.1.2.3"), "10.1.0.0/16");
	CHECK_STR(verdict(p, "10.2.2.3"), "ok");
	CHECK_STR(verdict(p, "169.254.169.254"), "link-local");
	hf_egress_free(p);
	/* An allow list: everything refused but one range, whose own holes
	 * stay refused. */
	p = parse("0.0.0.0/0,::/0", "203.0.113.0/24");
	CHECK_STR(verdict(p, "203.0.113.5"), "ok");
	CHECK_STR(verdict(p, "203.0.114.5"), "0.0.0.0/0");
	CHECK_STR(verdict(p, "2001:db8::1"), "::/0");
	CHECK_STR(verdict(p, "0.0.0.0"), "unspecified");
	hf_egress_free(p);
	/* The most specific deny names the refusal. */
	p = parse("10.0.0.0/8,10.1.0.0/16,private", NULL);
	CHECK_STR(verdict(p, "10.1.0.1"), "10.1.0.0/16");
	CHECK_STR(verdict(p, "10.2.0.1"), "10.0.0.0/8");
	hf_egress_free(p);
}

/* The message for a bad list, or "" when it parses. */
static const char *error_of(const char *deny, const char *allow)
{
	static char err[512];
	err[0] = '\0';
	struct hf_egress *p = hf_egress_parse(deny, allow, err, sizeof err);
	if (p) {
		hf_egress_free(p);
		return "";
	}
	return err;
}

static void test_bad_lists(void)
{
	CHECK_STR(error_of("", ""), "");
	CHECK_STR(error_of("PRIVATE,Link-Local", "unspecified"), "");
	CHECK_STR(error_of("10.0.0.1/8", NULL),
		  "--egress-deny: '10.0.0.1/8' has bits set past its prefix "
		  "(did you mean 10.0.0.0/8?)");
	CHECK_STR(error_of(NULL, "fe80::1/10"),
		  "--egress-allow: 'fe80::1/10' has bits set past its prefix "
		  "(did you mean fe80::/10?)");
	CHECK_STR(error_of("10.0.0.0/8,,10.1.0.0/16", NULL),
		  "--egress-deny: an empty item in '10.0.0.0/8,,10.1.0.0/16'");
	CHECK_STR(error_of("10.0.0.0/8,", NULL),
		  "--egress-deny: an empty item in '10.0.0.0/8,'");
	CHECK_STR(error_of(NULL, "localhost"),
		  "--egress-allow: 'localhost' is not an address range (such "
		  "as 10.0.0.0/8, fd00::/8, or private, link-local, "
		  "unspecified)");
	static const char *const bad[] = {
	    "127.1",	    "2130706433",    "0x7f000001",
	    "10.0.0.0/33",  "10.0.0.0/",     "10.0.0.0/-1",
	    "10.0.0.0/8/8", "::/129",	     "10.0.0.0/ 8",
	    "10.0.0.0/+8",  "fe80::1%eth0",  "10.0.0.0/0008",
	    "1.2.3.4.5",    "[::1]",	     "*",
	    "10.0.0.0 /8",  "0.0.0.0/0 junk"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *e = error_of(bad[i], NULL);
		CHECK(strstr(e, "--egress-deny: '") == e);
		if (!*e)
			fprintf(stderr, "accepted: %s\n", bad[i]);
	}
	char longer[400];
	memset(longer, '1', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	CHECK(strstr(error_of(longer, NULL), "an overlong item") != NULL);
	/* Past HF_EGRESS_MAX_RULES ranges. */
	char many[400 * 16] = "";
	for (int i = 0; i < 300; i++) {
		char one[24];
		snprintf(one, sizeof one, "%s10.0.%d.%d", i ? "," : "", i / 256,
			 i % 256);
		strcat(many, one);
	}
	CHECK(strstr(error_of(many, NULL), "more than 256 ranges") != NULL);
}

static void test_sockaddr(void)
{
	struct hf_egress *p = parse("private", NULL);
	char why[128];
	struct sockaddr_in in = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
	CHECK(!hf_egress_check(p, (struct sockaddr *)&in, sizeof in, why,
			       sizeof why));
	CHECK_STR(why, "destination 127.0.0.2 refused (private)");
	inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
	CHECK(hf_egress_check(p, (struct sockaddr *)&in, sizeof in, why,
			      sizeof why));
	CHECK(!hf_egress_check(p, (struct sockaddr *)&in, sizeof in - 1, why,
			       sizeof why)); /* too short */
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:169.254.169.254", &in6.sin6_addr);
	CHECK(!hf_egress_check(NULL, (struct sockaddr *)&in6, sizeof in6, why,
			       sizeof why));
	CHECK_STR(why, "destination 169.254.169.254 refused (link-local)");
	inet_pton(AF_INET6, "fd12::1", &in6.sin6_addr);
	CHECK(!hf_egress_check(p, (struct sockaddr *)&in6, sizeof in6, why,
			       sizeof why));
	CHECK_STR(why, "destination fd12::1 refused (private)");
	struct sockaddr un = {.sa_family = AF_UNIX};
	CHECK(!hf_egress_check(NULL, &un, sizeof un, why, sizeof why));
	CHECK(strstr(why, "refused") != NULL);
	hf_egress_free(p);
}

int main(void)
{
	test_defaults();
	test_private();
	test_ranges();
	test_precedence();
	test_bad_lists();
	test_sockaddr();
	return tap_done();
}
