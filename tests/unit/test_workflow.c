/* test_workflow.c - the workflow loader: every key of docs/reference.md
 * ("Workflow YAML") into the model, one case per kind of error with its exact
 * FILE:LINE:COL and message, the `with:` chunk, and the workflow set (reload
 * keeping a previous version, duplicate names). Fixtures are written to a
 * temporary directory. */
#include "hf_workflow.h"
#include "tap.h"
#include "tmpdir.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tmp;
static char scripts[300];

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
}

static struct hf_workflow *parse(const char *text, struct hf_diags *d)
{
	return hf_workflow_parse("wf.yml", text, strlen(text), scripts, d);
}

static char fmt_buf[2048];

/* The first problem, formatted as `check` prints it. */
static const char *first(const struct hf_diags *d)
{
	if (!d->n)
		return "(no diagnostics)";
	hf_error_format(&d->items[0], fmt_buf, sizeof fmt_buf);
	return fmt_buf;
}

/* The problem equal to want, or the first one (so the failure shows it). */
static const char *find(const struct hf_diags *d, const char *want)
{
	for (size_t i = 0; i < d->n; i++) {
		hf_error_format(&d->items[i], fmt_buf, sizeof fmt_buf);
		if (strcmp(fmt_buf, want) == 0)
			return fmt_buf;
	}
	return first(d);
}

/* Parses text, expects failure with `want` among the problems. */
static void expect_error(const char *text, const char *want)
{
	struct hf_diags d = {0};
	struct hf_workflow *wf = parse(text, &d);
	CHECK(wf == NULL);
	CHECK(d.n > 0);
	CHECK_STR(find(&d, want), want);
	hf_workflow_unref(wf);
	hf_diags_release(&d);
}

/* Parses text, expects exactly one problem: want. */
static void expect_only(const char *text, const char *want)
{
	struct hf_diags d = {0};
	struct hf_workflow *wf = parse(text, &d);
	CHECK(wf == NULL);
	CHECK(d.n == 1);
	CHECK_STR(first(&d), want);
	hf_workflow_unref(wf);
	hf_diags_release(&d);
}

static char *sha256_hex(const char *a, const char *b)
{
	unsigned char md[32];
	unsigned int n = 0;
	static char hex[65];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, a, strlen(a));
	EVP_DigestUpdate(ctx, b, strlen(b));
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

static const char assign_lua[] = "local t = args.ticket\nreturn {t = t}\n";

static const char full_yml[] =
    "name: assign-ticket\n"
    "description: Route new tickets to the least-loaded agent\n"
    "on:\n"
    "  webhook:\n"
    "    path: /helpdesk/tickets\n"
    "    methods: [POST, put]\n"
    "    verify:\n"
    "      scheme: hmac-sha256\n"
    "      secrets: [\"${HF_TEST_NEW}\", \"old-${HF_TEST_OLD}-x\"]\n"
    "      header: X-Hub-Sig\n"
    "      tolerance: 2m\n"
    "    dedupe: event.headers[\"x-delivery-id\"]\n"
    "    respond: sync\n"
    "    timeout: 3s\n"
    "if: event.body.ticket.status == \"new\"\n"
    "timeout: 5m\n"
    "concurrency: { key: event.body.ticket.id, max: 3 }\n"
    "steps:\n"
    "  - id: pick\n"
    "    run: |\n"
    "      local n = 1\n"
    "      return db.one(\"SELECT name FROM agents LIMIT ?\", n)\n"
    "  - id: assign\n"
    "    if: steps.pick ~= nil\n"
    "    script: assign.lua\n"
    "    with: { team: support, ticket: \"${{ event.body.ticket.id }}\" }\n"
    "    retry: { attempts: 5, backoff: 2s, max_delay: 5m }\n"
    "    timeout: 20s\n"
    "    continue_on_error: true\n";

static void test_full(void)
{
	struct hf_diags d = {0};
	setenv("HF_TEST_NEW", "new-secret", 1);
	setenv("HF_TEST_OLD", "old", 1);
	struct hf_workflow *wf = parse(full_yml, &d);
	CHECK(wf != NULL);
	CHECK(d.n == 0);
	if (!wf) {
		fprintf(stderr, "%s\n", first(&d));
		hf_diags_release(&d);
		return;
	}
	CHECK_STR(wf->name, "assign-ticket");
	CHECK_STR(wf->description,
		  "Route new tickets to the least-loaded agent");
	CHECK_STR(wf->file, "wf.yml");
	CHECK_STR(wf->version, sha256_hex(full_yml, assign_lua));
	CHECK_STR(wf->path, "/helpdesk/tickets");
	CHECK(wf->methods == (HF_METHOD_POST | HF_METHOD_PUT));
	CHECK(wf->verify.scheme == HF_VERIFY_HMAC_SHA256);
	CHECK(wf->verify.nsecrets == 2);
	CHECK_STR(wf->verify.secrets[0], "new-secret");
	CHECK_STR(wf->verify.secrets[1], "old-old-x");
	CHECK_STR(wf->verify.header, "x-hub-sig");
	CHECK(wf->verify.tolerance_ms == 120000);
	CHECK(wf->dedupe && wf->dedupe->line == 12 && wf->dedupe->col == 13);
	CHECK_STR(wf->dedupe ? wf->dedupe->src : NULL,
		  "event.headers[\"x-delivery-id\"]");
	CHECK(wf->respond_sync);
	CHECK(wf->respond_timeout_ms == 3000);
	CHECK(wf->if_expr && wf->if_expr->line == 15 && wf->if_expr->col == 5);
	CHECK_STR(wf->if_expr ? wf->if_expr->chunk : NULL,
		  "\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
		  "return (event.body.ticket.status == \"new\")");
	CHECK(wf->timeout_ms == 5 * 60 * 1000);
	CHECK_STR(wf->concurrency_key ? wf->concurrency_key->src : NULL,
		  "event.body.ticket.id");
	CHECK(wf->concurrency_max == 3);
	CHECK(wf->nsteps == 2);

	const struct hf_step *s = &wf->steps[0];
	CHECK_STR(s->id, "pick");
	CHECK(s->line == 19);
	CHECK_STR(s->code, "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
			   "local n = 1\n"
			   "return db.one(\"SELECT name FROM agents LIMIT ?\", "
			   "n)\n");
	CHECK_STR(s->code_name, "@wf.yml");
	CHECK(s->script == NULL && s->if_expr == NULL && s->with_chunk == NULL);
	CHECK(s->retry_attempts == 1);
	CHECK(s->retry_backoff_ms == 1000 && s->retry_max_backoff_ms == 60000);
	CHECK(s->retry_max_delay_ms == 3600000);
	CHECK(s->timeout_ms == 30000);
	CHECK(!s->continue_on_error);

	s = &wf->steps[1];
	char name[600];
	snprintf(name, sizeof name, "@%s/assign.lua", scripts);
	CHECK_STR(s->id, "assign");
	CHECK(s->line == 23);
	CHECK_STR(s->script, "assign.lua");
	CHECK_STR(s->code, assign_lua);
	CHECK_STR(s->code_name, name);
	CHECK_STR(s->if_expr ? s->if_expr->src : NULL, "steps.pick ~= nil");
	CHECK(s->if_expr && s->if_expr->line == 24);
	CHECK_STR(
	    s->with_chunk,
	    "return \n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
	    "{[\"team\"]=\"support\",[\"ticket\"]=(event.body.ticket.id),}");
	CHECK(s->retry_attempts == 5);
	CHECK(s->retry_backoff_ms == 2000 && s->retry_max_backoff_ms == 60000);
	CHECK(s->retry_max_delay_ms == 300000);
	CHECK(s->timeout_ms == 20000);
	CHECK(s->continue_on_error);

	CHECK(hf_workflow_step_index(wf, "pick") == 0);
	CHECK(hf_workflow_step_index(wf, "assign") == 1);
	CHECK(hf_workflow_step_index(wf, "nope") == -1);

	CHECK(hf_workflow_ref(wf) == wf);
	CHECK(wf->refs == 2);
	hf_workflow_unref(wf);
	hf_workflow_unref(wf);
	hf_workflow_unref(NULL);
	hf_diags_release(&d);
}

static void test_defaults(void)
{
	struct hf_diags d = {0};
	struct hf_workflow *wf =
	    parse("name: a_b-1\n"
		  "on: {webhook: {path: /x/, methods: GET}}\n"
		  "steps: [{id: s, run: return 1}]\n",
		  &d);
	CHECK(wf != NULL);
	if (!wf) {
		fprintf(stderr, "%s\n", first(&d));
		return;
	}
	CHECK(wf->methods == HF_METHOD_GET);
	CHECK(wf->description == NULL && wf->if_expr == NULL);
	CHECK(wf->dedupe == NULL && wf->concurrency_key == NULL);
	CHECK(wf->verify.scheme == HF_VERIFY_NONE && wf->verify.nsecrets == 0);
	CHECK(wf->verify.header == NULL);
	CHECK(!wf->respond_sync && wf->respond_timeout_ms == 10000);
	CHECK(wf->timeout_ms == 15 * 60 * 1000);
	CHECK(wf->concurrency_max == 1);
	CHECK(wf->nsteps == 1 && wf->steps[0].retry_attempts == 1);
	CHECK_STR(wf->steps[0].code, "\n\nreturn 1");
	CHECK(strlen(wf->version) == 64);
	hf_workflow_unref(wf);

	/* the default header of hmac-sha256, a single secret, github */
	setenv("HF_TEST_NEW", "s3", 1);
	wf = parse(
	    "name: b\n"
	    "on:\n"
	    "  webhook:\n"
	    "    path: /b\n"
	    "    verify: {scheme: hmac-sha256, secret: \"${HF_TEST_NEW}\"}\n"
	    "steps: [{id: s, run: return 1}]\n",
	    &d);
	CHECK(wf && wf->verify.nsecrets == 1);
	CHECK_STR(wf ? wf->verify.header : NULL, "x-signature");
	CHECK(wf && wf->verify.tolerance_ms == 5 * 60 * 1000);
	hf_workflow_unref(wf);
	wf = parse("name: b\n"
		   "on: {webhook: {path: /b, verify: {scheme: github, secret: "
		   "plain}}}\n"
		   "steps: [{id: s, run: return 1}]\n",
		   &d);
	CHECK(wf && wf->verify.scheme == HF_VERIFY_GITHUB);
	CHECK(wf && wf->verify.header == NULL);
	CHECK_STR(wf ? wf->verify.secrets[0] : NULL, "plain");
	hf_workflow_unref(wf);
	CHECK(d.n == 0);
	hf_diags_release(&d);
}

#define OK_ON "on: {webhook: {path: /x}}\n"
#define OK_STEPS "steps: [{id: s, run: return 1}]\n"

static void test_errors(void)
{
	/* YAML syntax */
	expect_only("name: x\non: {webhook: {path: /x}\nsteps: []\n",
		    "wf.yml:3:1: invalid YAML: did not find expected ',' or "
		    "'}' (while parsing a flow mapping at line 2)");
	expect_only("name: x\n  bad: indent\n",
		    "wf.yml:2:6: invalid YAML: mapping values are not allowed "
		    "in this context");
	expect_only("- a\n- b\n",
		    "wf.yml:1:1: a workflow must be a YAML mapping (with name, "
		    "on and steps)");
	expect_only("", "wf.yml:1:1: a workflow must be a YAML mapping (with "
			"name, on and steps)");
	expect_error("name: x\n" OK_ON OK_STEPS "---\nname: y\n",
		     "wf.yml:5:1: a workflow file holds one YAML document");
	/* keys */
	expect_error(
	    "name: x\n" OK_ON "stpes: []\n",
	    "wf.yml:3:1: unknown key 'stpes' (expected one of: name, "
	    "description, on, if, timeout, concurrency, steps, on_failure, "
	    "cancel_on, throttle, debounce)");
	expect_error("name: x\n" OK_ON "stpes: []\n",
		     "wf.yml:1:1: missing required key 'steps'");
	expect_only("name: x\n" OK_ON OK_STEPS "name: y\n",
		    "wf.yml:4:1: duplicate key 'name'");
	expect_only(OK_ON OK_STEPS, "wf.yml:1:1: missing required key 'name'");
	expect_only("name: Bad Name\n" OK_ON OK_STEPS,
		    "wf.yml:1:7: invalid name 'Bad Name' (expected "
		    "[a-z0-9_-]+, at most 64 characters)");
	expect_only("name: x\non: {webhook: {path: /x, verfy: {}}}\n" OK_STEPS,
		    "wf.yml:2:26: unknown key 'verfy' (expected one of: path, "
		    "methods, verify, dedupe, respond, timeout)");
	expect_only("name: x\non: {webhook: {path: /x, methods: [POST, "
		    "FETCH]}}\n" OK_STEPS,
		    "wf.yml:2:42: unknown method 'FETCH' (expected one of: "
		    "GET, POST, PUT, PATCH, DELETE)");
	expect_only(
	    "name: x\non: {webhook: {path: /x, respond: later}}\n" OK_STEPS,
	    "wf.yml:2:35: invalid respond 'later' (expected async or "
	    "sync)");
	/* steps */
	expect_only("name: x\n" OK_ON "steps:\n"
		    "  - id: a\n"
		    "    run: return 1\n"
		    "  - id: a\n"
		    "    run: return 2\n",
		    "wf.yml:6:9: duplicate step id 'a' (first used on line 4)");
	expect_only("name: x\n" OK_ON "steps: []\n",
		    "wf.yml:3:8: 'steps' must not be empty");
	expect_only("name: x\n" OK_ON "steps: [{id: Bad, run: return 1}]\n",
		    "wf.yml:3:14: invalid step id 'Bad' (expected [a-z0-9_]+, "
		    "at most 64 characters)");
	expect_only(
	    "name: x\n" OK_ON "steps:\n"
	    "  - id: a\n"
	    "    run: return 1\n"
	    "    script: a.lua\n",
	    "wf.yml:4:5: step 'a' has both 'run' and 'script' (expected "
	    "exactly one)");
	expect_only("name: x\n" OK_ON "steps: [{id: a}]\n",
		    "wf.yml:3:9: step 'a' needs 'run' or 'script'");
	/* durations and numbers */
	expect_only(
	    "name: x\n" OK_ON "steps:\n"
	    "  - id: a\n"
	    "    run: return 1\n"
	    "    timeout: fast\n",
	    "wf.yml:6:14: invalid duration 'fast' (expected e.g. 500ms, "
	    "30s, 2m, 1h)");
	expect_only("name: x\ntimeout: 0s\n" OK_ON OK_STEPS,
		    "wf.yml:2:10: 'timeout' must be longer than 0");
	expect_only("name: x\n" OK_ON
		    "steps: [{id: a, run: x(), retry: {attempts: 0}}]\n",
		    "wf.yml:3:45: 'retry.attempts' must be an integer from 1 "
		    "to 100 (got '0')");
	expect_only("name: x\n" OK_ON
		    "steps: [{id: a, run: x(), retry: {attempts: 2, max_delay: "
		    "soon}}]\n",
		    "wf.yml:3:59: invalid duration 'soon' (expected e.g. "
		    "500ms, 30s, 2m, 1h)");
	expect_only("name: x\n" OK_ON
		    "steps: [{id: a, run: x(), continue_on_error: maybe}]\n",
		    "wf.yml:3:46: 'continue_on_error' must be true or false "
		    "(got 'maybe')");
	/* paths */
	expect_only(
	    "name: x\non: {webhook: {path: hooks/x}}\n" OK_STEPS,
	    "wf.yml:2:22: invalid path 'hooks/x' (must start with '/')");
	expect_only("name: x\non: {webhook: {path: \"/a b\"}}\n" OK_STEPS,
		    "wf.yml:2:22: invalid path '/a b' (no '?', '#', spaces or "
		    "control characters)");
	expect_only("name: x\non: {webhook: {path: /x?y=1}}\n" OK_STEPS,
		    "wf.yml:2:22: invalid path '/x?y=1' (no '?', '#', spaces "
		    "or control characters)");
	expect_only(
	    "name: x\non: {webhook: {path: /api/hook}}\n" OK_STEPS,
	    "wf.yml:2:22: path '/api/hook' is reserved (/api, /healthz, "
	    "/metrics and /ui belong to hookflow)");
	expect_only("name: x\non: {webhook: {}}\n" OK_STEPS,
		    "wf.yml:2:15: missing required key 'path'");
	/* scripts */
	char want[1024];
	snprintf(want, sizeof want,
		 "wf.yml:3:25: cannot read script '%s/missing.lua': No such "
		 "file or directory",
		 scripts);
	expect_only("name: x\n" OK_ON "steps: [{id: a, script: missing.lua}]\n",
		    want);
	expect_only("name: x\n" OK_ON "steps: [{id: a, script: ../x.lua}]\n",
		    "wf.yml:3:25: invalid script name '../x.lua' (expected a "
		    "file in the scripts directory ending in .lua)");
	snprintf(want, sizeof want,
		 "%s/broken.lua:2:1: lua syntax error: unexpected symbol near "
		 "'+'",
		 scripts);
	expect_only("name: x\n" OK_ON "steps: [{id: a, script: broken.lua}]\n",
		    want);
	/* Lua syntax, with the YAML file's line */
	expect_only("name: x\n" OK_ON "steps:\n"
		    "  - id: pick\n"
		    "    run: |\n"
		    "      local a = 1\n"
		    "      local b = = 2\n"
		    "      return a\n",
		    "wf.yml:7:7: lua syntax error in step 'pick': unexpected "
		    "symbol near '='");
	expect_only("name: x\n" OK_ON "steps:\n"
		    "  - id: pick\n"
		    "    run: |\n"
		    "      if x then\n"
		    "        return 1\n",
		    "wf.yml:7:7: lua syntax error in step 'pick': 'end' "
		    "expected (to close 'if' at line 6) near <eof>");
	expect_only("name: x\n" OK_ON "steps: [{id: a, run: return 1 +}]\n",
		    "wf.yml:3:22: lua syntax error in step 'a': unexpected "
		    "symbol near <eof>");
	expect_only("name: x\n" OK_ON "steps:\n"
		    "  - id: a\n"
		    "    if: steps.x ==\n"
		    "    run: return 1\n",
		    "wf.yml:5:9: lua syntax error in 'if': unexpected symbol "
		    "near ')'");
	expect_only("name: x\nif: \"a b\"\n" OK_ON OK_STEPS,
		    "wf.yml:2:6: lua syntax error in 'if': ')' expected near "
		    "'b'");
	expect_only("name: x\n" OK_ON "steps:\n"
		    "  - id: a\n"
		    "    run: return 1\n"
		    "    with:\n"
		    "      n: 1\n"
		    "      t: \"id ${{ event.( }}\"\n",
		    "wf.yml:8:18: lua syntax error in 'with': <name> expected "
		    "near '('");
	expect_only(
	    "name: x\n" OK_ON
	    "steps: [{id: a, run: x(), with: {t: \"${{ a\"}}]\n",
	    "wf.yml:3:38: unterminated '${{' in 'with' (expected '}}')");
	expect_only("name: x\n" OK_ON "concurrency: {max: 2}\n" OK_STEPS,
		    "wf.yml:3:14: missing required key 'key'");
	/* secrets */
	unsetenv("HF_TEST_UNSET");
	expect_only(
	    "name: x\n"
	    "on:\n"
	    "  webhook:\n"
	    "    path: /x\n"
	    "    verify:\n"
	    "      scheme: stripe\n"
	    "      secret: ${HF_TEST_UNSET}\n" OK_STEPS,
	    "wf.yml:7:15: environment variable HF_TEST_UNSET is not set");
	expect_only("name: x\n"
		    "on: {webhook: {path: /x, verify: {scheme: github, "
		    "secret: a, secrets: [b]}}}\n" OK_STEPS,
		    "wf.yml:2:71: use either 'secret' or 'secrets', not both");
	expect_only(
	    "name: x\n"
	    "on: {webhook: {path: /x, verify: {scheme: github}}}\n" OK_STEPS,
	    "wf.yml:2:34: missing required key 'secret' (or 'secrets')");
	expect_only(
	    "name: x\n"
	    "on: {webhook: {path: /x, verify: {scheme: md5, secret: "
	    "a}}}\n" OK_STEPS,
	    "wf.yml:2:43: unknown verify scheme 'md5' (expected one of: "
	    "hmac-sha256, github, stripe, slack, shopify, "
	    "standard-webhooks, hmac, zendesk, hubspot, intercom, helpscout, "
	    "token, basic)");
	expect_only(
	    "name: x\n"
	    "on: {webhook: {path: /x, verify: {scheme: github, secret: "
	    "a, header: X-Sig}}}\n" OK_STEPS,
	    "wf.yml:2:70: 'header' applies only to schemes hmac-sha256, "
	    "hmac and token");
	/* a secret's value never shows up in a message */
	struct hf_diags d = {0};
	setenv("HF_TEST_NEW", "topsecretvalue", 1);
	CHECK(parse("name: x\n"
		    "on: {webhook: {path: /x, verify: {scheme: github, secret: "
		    "\"${HF_TEST_NEW}\", tolerance: never}}}\n" OK_STEPS,
		    &d) == NULL);
	for (size_t i = 0; i < d.n; i++)
		CHECK(strstr(d.items[i].msg, "topsecretvalue") == NULL);
	hf_diags_release(&d);
	/* several problems at once, in file order */
	CHECK(parse("name: X\n"
		    "on: {webhook: {path: x}}\n"
		    "steps: [{id: a, run: \"return +\"}]\n",
		    &d) == NULL);
	CHECK(d.n == 3);
	CHECK(d.n == 3 && d.items[0].line == 1 && d.items[1].line == 2 &&
	      d.items[2].line == 3);
	hf_diags_release(&d);
}

/* Evaluates a with_chunk in a plain Lua state with `event` set. */
static void test_with(void)
{
	struct hf_diags d = {0};
	struct hf_workflow *wf =
	    parse("name: x\n" OK_ON "steps:\n"
		  "  - id: a\n"
		  "    run: return 1\n"
		  "    with:\n"
		  "      team: support\n"
		  "      n: 42\n"
		  "      f: -1.5\n"
		  "      yes_: true\n"
		  "      no_: false\n"
		  "      none: null\n"
		  "      quoted: \"42\"\n"
		  "      esc: \"a\\\"b\\\\c\\nd\\te\"\n"
		  "      whole: \"${{ event.id }}\"\n"
		  "      num: ${{ event.n * 2 }}\n"
		  "      mixed: \"id-${{ event.id }}/${{event.n}}!\"\n"
		  "      list: [1, two, {deep: [\"${{ event.n }}\"]}]\n"
		  "      nested:\n"
		  "        a:\n"
		  "          b: \"]]==]\"\n",
		  &d);
	CHECK(wf != NULL);
	if (!wf) {
		fprintf(stderr, "%s\n", first(&d));
		hf_diags_release(&d);
		return;
	}
	const char *ch = wf->steps[0].with_chunk;
	CHECK(ch != NULL);
	/* values sit on their YAML lines */
	CHECK(ch && strstr(ch, "\n\n\n\n\n\n{[\"team\"]=\"support\",\n"
			       "[\"n\"]=42,\n[\"f\"]=-1.5,\n"));
	CHECK(ch && strstr(ch, "[\"whole\"]=(event.id),\n"));
	CHECK(ch && strstr(ch, "[\"mixed\"]=(\"id-\" .. tostring((event.id)) "
			       ".. \"/\" .. tostring((event.n)) .. \"!\"),"));
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	CHECK(luaL_dostring(L, "event = {id = 'ev1', n = 21}") == 0);
	CHECK(luaL_loadbuffer(L, ch, strlen(ch), "=wf.yml") == 0);
	lua_setglobal(L, "f");
	const char *check =
	    "local t = f()\n"
	    "assert(t.team == 'support')\n"
	    "assert(t.n == 42 and math.type(t.n) == 'integer')\n"
	    "assert(t.f == -1.5)\n"
	    "assert(t.yes_ == true and t.no_ == false)\n"
	    "assert(t.none == nil)\n"
	    "assert(t.quoted == '42')\n"
	    "assert(t.esc == 'a\"b\\\\c\\nd\\te')\n"
	    "assert(t.whole == 'ev1')\n"
	    "assert(t.num == 42)\n"
	    "assert(t.mixed == 'id-ev1/21!')\n"
	    "assert(t.list[1] == 1 and t.list[2] == 'two')\n"
	    "assert(t.list[3].deep[1] == 21)\n"
	    "assert(t.nested.a.b == ']]==]')\n"
	    "return true\n";
	int rc = luaL_dostring(L, check);
	if (rc)
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
	CHECK(rc == 0);
	lua_close(L);
	hf_workflow_unref(wf);

	/* an alias loop in with: is refused, not followed */
	CHECK(parse("name: x\n" OK_ON
		    "steps: [{id: a, run: x(), with: &w {a: *w}}]\n",
		    &d) == NULL);
	hf_diags_release(&d);
}

static void test_misc(void)
{
	char buf[64];
	CHECK(hf_method_from_name("POST") == HF_METHOD_POST);
	CHECK(hf_method_from_name("post") == 0);
	CHECK(hf_method_from_name("OPTIONS") == HF_METHOD_OPTIONS);
	hf_methods_format(HF_METHOD_POST | HF_METHOD_GET | HF_METHOD_DELETE,
			  buf, sizeof buf);
	CHECK_STR(buf, "GET, POST, DELETE");
	hf_methods_format(0, buf, sizeof buf);
	CHECK_STR(buf, "");
	CHECK_STR(hf_verify_scheme_name(HF_VERIFY_STANDARD),
		  "standard-webhooks");
	CHECK_STR(hf_verify_scheme_name(HF_VERIFY_HMAC_SHA256), "hmac-sha256");
	CHECK(hf_path_is_reserved("/api"));
	CHECK(hf_path_is_reserved("/api/"));
	CHECK(hf_path_is_reserved("/api/runs"));
	CHECK(hf_path_is_reserved("/healthz"));
	CHECK(hf_path_is_reserved("/metrics/"));
	CHECK(hf_path_is_reserved("/ui"));
	CHECK(hf_path_is_reserved("/ui/app.js"));
	CHECK(!hf_path_is_reserved("/apix"));
	CHECK(!hf_path_is_reserved("/hooks/api"));
	CHECK(!hf_path_is_reserved("/healthz2"));
	CHECK(!hf_path_is_reserved("/"));
}

static const char *wf_text(const char *name, const char *path)
{
	static char buf[512];
	snprintf(buf, sizeof buf,
		 "name: %s\non: {webhook: {path: %s}}\n" OK_STEPS, name, path);
	return buf;
}

static void test_set(void)
{
	char dir[300];
	struct hf_diags d = {0};
	snprintf(dir, sizeof dir, "%s/wf", tmp);
	CHECK(mkdir(dir, 0700) == 0);

	/* empty directory: empty set */
	struct hf_workflow_set *s0 =
	    hf_workflow_set_load(dir, scripts, NULL, &d);
	CHECK(s0 && s0->n == 0 && d.n == 0);
	hf_workflow_set_unref(s0);
	CHECK(hf_workflow_set_load("/nonexistent/dir", scripts, NULL, &d) ==
	      NULL);
	hf_diags_release(&d);

	write_file(dir, "b.yml", wf_text("beta", "/b"));
	write_file(dir, "a.yaml", wf_text("alpha", "/shared"));
	write_file(dir, "c.yml", wf_text("gamma", "/shared"));
	write_file(dir, "notes.txt", "not a workflow");
	write_file(dir, ".hidden.yml", "garbage: [");
	struct hf_workflow_set *s1 =
	    hf_workflow_set_load(dir, scripts, NULL, &d);
	CHECK(s1 && s1->n == 3 && d.n == 0);
	if (!s1)
		return;
	CHECK_STR(s1->items[0]->name, "alpha"); /* sorted by file name */
	CHECK_STR(s1->items[1]->name, "beta");
	CHECK_STR(s1->items[2]->name, "gamma");
	CHECK(hf_workflow_set_find(s1, "beta") == s1->items[1]);
	CHECK(hf_workflow_set_find(s1, "delta") == NULL);

	/* b.yml breaks: its previous version stays; c.yml changes; d.yml is a
	 * duplicate name of alpha and is refused */
	write_file(dir, "b.yml", "name: beta\non: [\n");
	write_file(dir, "c.yml", wf_text("gamma", "/gamma2"));
	write_file(dir, "d.yml", "# another\n" OK_STEPS OK_ON "name: alpha\n");
	struct hf_workflow_set *s2 = hf_workflow_set_load(dir, scripts, s1, &d);
	CHECK(s2 && s2->n == 3);
	CHECK(d.n == 2);
	char want[700];
	snprintf(want, sizeof want,
		 "%s/b.yml:3:1: invalid YAML: did not find expected node "
		 "content (while parsing a flow node at line 3)",
		 dir);
	CHECK_STR(find(&d, want), want);
	snprintf(want, sizeof want,
		 "%s/d.yml:4:7: duplicate workflow name 'alpha' (already "
		 "defined in %s/a.yaml)",
		 dir, dir);
	CHECK_STR(find(&d, want), want);
	hf_diags_release(&d);
	if (s2) {
		/* the failed files are kept with their problems and paths */
		CHECK(s2->nfailed == 2 && s2->nerrors == 2);
		CHECK(strstr(s2->errors[0].file, "/b.yml") &&
		      s2->errors[0].line == 3 && s2->errors[0].col == 1 &&
		      s2->errors[0].path == NULL);
		CHECK_STR(s2->errors[1].path, "/x");
		CHECK(strstr(s2->errors[1].message, "duplicate workflow"));
		CHECK(hf_workflow_set_failed_path(s2, "/x/") == &s2->errors[1]);
		CHECK(hf_workflow_set_failed_path(s2, "/b") == NULL);
		CHECK(s1->nfailed == 0 && s1->errors == NULL);
		CHECK(s2->items[1] == s1->items[1]); /* the kept beta */
		CHECK(s1->items[1]->refs == 2);
		CHECK_STR(s2->items[2]->path, "/gamma2");
		CHECK(s2->items[0] != s1->items[0]); /* reloaded */
	}
	hf_workflow_set_unref(hf_workflow_set_ref(s1));
	hf_workflow_set_unref(s1);
	CHECK(s2 && s2->items[1]->refs == 1);

	/* a file removed takes its workflow with it, prev or not */
	remove_file(dir, "b.yml");
	struct hf_workflow_set *s3 = hf_workflow_set_load(dir, scripts, s2, &d);
	CHECK(s3 && s3->n == 2 && hf_workflow_set_find(s3, "beta") == NULL);
	CHECK(d.n == 1); /* d.yml still a duplicate */
	hf_workflow_set_unref(s2);
	hf_workflow_set_unref(s3);
	hf_workflow_set_unref(NULL);
	hf_diags_release(&d);

	remove_file(dir, "a.yaml");
	remove_file(dir, "c.yml");
	remove_file(dir, "d.yml");
	remove_file(dir, "notes.txt");
	remove_file(dir, ".hidden.yml");
	rmdir(dir);
}

/* The path of a file that fails is read from its YAML as far as it parses;
 * a `{name}` segment matches one segment. */
static void test_failed_paths(void)
{
	char dir[300];
	struct hf_diags d = {0};
	snprintf(dir, sizeof dir, "%s/failed", tmp);
	CHECK(mkdir(dir, 0700) == 0);
	write_file(dir, "a.yml",
		   "name: a\non:\n  webhook:\n    path: /t/{id}\n"
		   "    bogus: 1\n" OK_STEPS);
	write_file(dir, "b.yml",
		   "on: {other: {path: /no}, webhook: {methods: [POST], path: "
		   "'/b'}}\nname: [\n");
	write_file(dir, "c.yml",
		   "name: c\npath: /top\non: {webhook: [path, /seq]}\n");
	write_file(dir, "d.yml", "steps: [\non:\n  webhook:\n    path: /d\n");
	struct hf_workflow_set *s =
	    hf_workflow_set_load(dir, scripts, NULL, &d);
	CHECK(s && s->n == 0 && s->nfailed == 4);
	if (s) {
		CHECK(hf_workflow_set_failed_path(s, "/t/42") != NULL);
		CHECK(hf_workflow_set_failed_path(s, "/t/42/") != NULL);
		CHECK(hf_workflow_set_failed_path(s, "/t") == NULL);
		CHECK(hf_workflow_set_failed_path(s, "/t/") == NULL);
		CHECK(hf_workflow_set_failed_path(s, "/t/1/2") == NULL);
		CHECK(hf_workflow_set_failed_path(s, "/b") != NULL);
		CHECK(hf_workflow_set_failed_path(s, "/no") == NULL);
		CHECK(hf_workflow_set_failed_path(s, "/top") == NULL);
		CHECK(hf_workflow_set_failed_path(s, "/seq") == NULL);
		CHECK(hf_workflow_set_failed_path(s, "/d") == NULL);
		for (size_t i = 0; i < s->nerrors; i++)
			CHECK(s->errors[i].file && s->errors[i].message);
	}
	hf_workflow_set_unref(s);
	hf_diags_release(&d);
	remove_file(dir, "a.yml");
	remove_file(dir, "b.yml");
	remove_file(dir, "c.yml");
	remove_file(dir, "d.yml");
	rmdir(dir);
}

static void test_load_file(void)
{
	struct hf_diags d = {0};
	char path[600];
	write_file(tmp, "one.yml", wf_text("one", "/one"));
	snprintf(path, sizeof path, "%s/one.yml", tmp);
	struct hf_workflow *wf = hf_workflow_load(path, scripts, &d);
	CHECK(wf && d.n == 0);
	CHECK_STR(wf ? wf->file : NULL, path);
	hf_workflow_unref(wf);
	snprintf(path, sizeof path, "%s/none.yml", tmp);
	CHECK(hf_workflow_load(path, scripts, &d) == NULL);
	CHECK(d.n == 1 && strstr(d.items[0].msg, "cannot read file"));
	hf_diags_release(&d);
	remove_file(tmp, "one.yml");
}

int main(void)
{
	tmp = tmpdir_create("test_workflow");
	tmpdir_file(scripts, sizeof scripts, "scripts");
	mkdir(scripts, 0700);
	write_file(scripts, "assign.lua", assign_lua);
	write_file(scripts, "broken.lua", "local x = 1\nreturn + +\n");

	test_full();
	test_defaults();
	test_errors();
	test_with();
	test_misc();
	test_set();
	test_failed_paths();
	test_load_file();

	CHECK(tmpdir_remove() == 0);
	return tap_done();
}
