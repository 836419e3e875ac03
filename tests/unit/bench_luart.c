/* bench_luart.c - CPU per step of the worker's Lua runtime, and per decode
 * of a 1 KiB JSON body into Lua (issue 13, "cheap steps"). Not a test: built
 * as tests/unit/bench_luart, run by hand:
 *
 *   build/tests/unit/bench_luart [iterations]
 *
 * Each figure is thread CPU time (CLOCK_THREAD_CPUTIME_ID) divided by the
 * iterations. A step is run as the worker runs it (hf_ops_step's event:
 * built from the in-memory event). The same source builds against an older
 * tree (no hf_lua_json_decode, event given as JSON) for before/after. */
#include "hf_body.h"
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "hf_luart.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HF_LUA_GC_SLACK
#define NEW_TREE 1
#endif
#ifdef HAVE_CJSON
int luaopen_cjson(lua_State *L);
#endif
#ifdef NEW_TREE
void hf_lua_copy_value(lua_State *L, int idx); /* luart_int.h */
#endif

static double cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A 1 KiB webhook body (an issue tracker's "ticket updated"). */
static const char BODY[] =
    "{\"action\":\"updated\",\"id\":\"evt_01HF8Q2K3M4N5P6R7S8T9V0W1X\","
    "\"created_at\":\"2026-12-05T10:11:12.345Z\",\"ticket\":{\"id\":48213,"
    "\"subject\":\"Cannot log in after password reset\",\"status\":\"open\","
    "\"priority\":\"high\",\"tags\":[\"login\",\"password\",\"web\",null],"
    "\"requester\":{\"id\":991,\"name\":\"Ada Lovelace\",\"email\":"
    "\"ada@example.com\",\"verified\":true,\"locale\":\"en-GB\"},"
    "\"assignee\":null,\"group\":{\"id\":12,\"name\":\"Support L1\"},"
    "\"custom_fields\":[{\"id\":1,\"value\":\"web\"},{\"id\":2,\"value\":3.5},"
    "{\"id\":3,\"value\":false},{\"id\":4,\"value\":null}],\"via\":{"
    "\"channel\":"
    "\"email\",\"source\":{\"from\":{\"address\":\"ada@example.com\"},\"to\":"
    "{\"address\":\"support@example.com\"}}},\"description\":\"After "
    "resetting my password I get \\\"invalid credentials\\\" on every "
    "attempt. Tried two browsers.\\nPlease help.\",\"updated_at\":"
    "\"2026-12-05T10:11:12Z\",\"satisfaction\":{\"score\":\"unoffered\"},"
    "\"sla\":{\"breach_at\":\"2026-12-05T14:11:12Z\",\"policy\":7}},"
    "\"changes\":{\"status\":{\"from\":\"new\",\"to\":\"open\"},\"priority\":"
    "{\"from\":\"normal\",\"to\":\"high\"}},\"account\":{\"id\":\"acc_77\","
    "\"subdomain\":\"acme\",\"plan\":\"enterprise\"},\"attempt\":1,"
    "\"signature_version\":\"v1\",\"meta\":{\"retries\":0,\"region\":"
    "\"eu-west-1\",\"trace\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-"
    "00f067aa0ba902b7-01\"}}";

#define MAXSTEPS 3
struct wfb {
	struct hf_workflow wf;
	struct hf_step steps[MAXSTEPS];
	struct hf_expr ifs[MAXSTEPS];
};

static void wf_build(struct wfb *b, int n, const char *code, const char *ifc)
{
	memset(b, 0, sizeof *b);
	b->wf.name = "bench";
	b->wf.file = "workflows/bench.yml";
	b->wf.version = "v1";
	b->wf.path = "/hook";
	b->wf.steps = b->steps;
	b->wf.nsteps = (size_t)n;
	for (int i = 0; i < n; i++) {
		static const char *ids[] = {"a", "b", "c"};
		b->steps[i].id = (char *)ids[i];
		b->steps[i].code = (char *)code;
		b->steps[i].code_name = "=workflows/bench.yml";
		b->steps[i].retry_attempts = 1;
		if (ifc) {
			b->ifs[i].src = (char *)ifc;
			b->ifs[i].chunk = (char *)ifc;
			b->steps[i].if_expr = &b->ifs[i];
		}
	}
}

static struct hf_event *make_event(void)
{
	struct hf_event *ev = hf_event_new();
	snprintf(ev->id, sizeof ev->id, "ev_bench0000000000000001");
	ev->method = strdup("POST");
	ev->path = strdup("/hook");
	ev->query = json_object();
	json_error_t je;
	ev->headers = json_loads(
	    "{\"host\":\"127.0.0.1:8080\",\"user-agent\":\"wrk\","
	    "\"content-type\":\"application/json\",\"content-length\":\"1100\","
	    "\"accept\":\"*/*\",\"x-request-id\":\"0f8e7d6c5b4a\","
	    "\"x-signature\":\"sha256=0123456789abcdef0123456789abcdef\"}",
	    0, &je);
	ev->body = strdup(BODY);
	ev->body_len = strlen(BODY);
	char err[256];
	hf_json_parse(ev->body, ev->body_len, &ev->decoded, err, sizeof err);
	ev->received_at = 1764929472345;
	return ev;
}

/* One run of wf's steps as hf_ops_step does each: µs per run. */
static double bench_run(struct hf_luart *rt, struct wfb *b, struct hf_event *ev,
			int iters)
{
	double t0 = cpu_us();
	for (int it = 0; it < iters; it++) {
		json_t *outputs = json_object();
		for (size_t s = 0; s < b->wf.nsteps; s++) {
			struct hf_step_ctx ctx = {
			    .wf = &b->wf,
			    .step = s,
			    .steps = outputs,
			    .run_id = "run_bench",
			    .attempt = 1,
			    .timeout_ms = 10000,
			};
#ifdef NEW_TREE
			ctx.ev = ev;
			json_t *evj = NULL;
#else
			json_t *evj = hf_event_to_lua_json(ev);
			hf_event_json_params(evj, ev, &b->wf);
			ctx.event = evj;
#endif
			struct hf_step_result res;
			hf_luart_run_step(rt, &ctx, &res);
			if (res.status == HF_STEP_FAILED) {
				fprintf(stderr, "step failed: %s\n", res.error);
				exit(1);
			}
			json_decref(evj);
			json_object_set(outputs, b->steps[s].id, res.output);
			hf_step_result_release(&res);
		}
		json_decref(outputs);
		/* a new event id now and then: a new run's body */
		ev->id[sizeof "ev_bench" - 1] = (char)('a' + it % 26);
	}
	return (cpu_us() - t0) / iters;
}

static double bench_eval(struct hf_luart *rt, const char *src,
			 struct hf_event *ev, int iters)
{
	struct hf_expr e = {.src = (char *)src, .chunk = (char *)src};
	double t0 = cpu_us();
	for (int it = 0; it < iters; it++) {
		json_t *v;
		char *err;
#ifdef NEW_TREE
		json_t *evj = NULL;
		if (hf_luart_eval_event(rt, "bench:if", &e, ev, NULL, &v,
					&err) != 0) {
#else
		json_t *evj = hf_event_to_lua_json(ev);
		if (hf_luart_eval(rt, "bench:if", &e, evj, &v, &err) != 0) {
#endif
			fprintf(stderr, "eval: %s\n", err);
			exit(1);
		}
		json_decref(v);
		json_decref(evj);
	}
	return (cpu_us() - t0) / iters;
}

struct dcase {
	int kind;
	int iters;
	double us;
};

static int decode_cb(lua_State *L)
{
	struct dcase *c = lua_touserdata(L, 1);
	lua_settop(L, 0);
#ifdef HAVE_CJSON
	luaopen_cjson(L);
	lua_getfield(L, -1, "decode");
	lua_replace(L, 1);
	lua_settop(L, 1);
#endif
	double t0 = cpu_us();
	for (int i = 0; i < c->iters; i++) {
		switch (c->kind) {
		case 0: { /* jansson parse only */
			json_t *j;
			char err[128];
			hf_json_parse(BODY, sizeof BODY - 1, &j, err,
				      sizeof err);
			json_decref(j);
			break;
		}
		case 1: { /* jansson parse + push into Lua */
			json_t *j;
			char err[128];
			hf_json_parse(BODY, sizeof BODY - 1, &j, err,
				      sizeof err);
			hf_lua_push_json(L, j);
			json_decref(j);
			lua_pop(L, 1);
			break;
		}
		case 2: {
#ifdef NEW_TREE
			char err[128];
			if (hf_lua_json_decode(L, BODY, sizeof BODY - 1, false,
					       err, sizeof err) != 0) {
				fprintf(stderr, "%s\n", err);
				exit(1);
			}
			lua_pop(L, 1);
#endif
			break;
		}
		case 4: {
#ifdef NEW_TREE
			if (i == 0) {
				char err[128];
				hf_lua_json_decode(L, BODY, sizeof BODY - 1,
						   false, err, sizeof err);
			}
			hf_lua_copy_value(L, -1);
			lua_pop(L, 1);
#endif
			break;
		}
		case 3: {
#ifdef HAVE_CJSON
			lua_pushvalue(L, 1);
			lua_pushlstring(L, BODY, sizeof BODY - 1);
			lua_call(L, 1, 1);
			lua_pop(L, 1);
#endif
			break;
		}
		}
		if (i % 64 == 63)
			lua_gc(L, LUA_GCSTEP, 0);
	}
	c->us = (cpu_us() - t0) / c->iters;
	return 0;
}

static double bench_decode(lua_State *L, int kind, int iters)
{
	struct dcase c = {kind, iters, 0};
	lua_pushcfunction(L, decode_cb);
	lua_pushlightuserdata(L, &c);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		exit(1);
	}
	return c.us;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 20000;
	struct hf_error err = {0};
	struct hf_luart_config cfg = {0};
	struct hf_luart *rt = hf_luart_create(&cfg, &err);
	struct hf_luart_config ecfg = {.expr_only = true};
	struct hf_luart *ert = hf_luart_create(&ecfg, &err);
	if (!rt || !ert)
		return 1;
	struct hf_event *ev = make_event();
	struct wfb b;
	printf("body %zu bytes, %d iterations, CPU us each\n", sizeof BODY - 1,
	       iters);
	wf_build(&b, 1, "return 1", NULL);
	bench_run(rt, &b, ev, iters / 10); /* warm up */
	printf("step 'return 1'                     %6.2f\n",
	       bench_run(rt, &b, ev, iters));
	wf_build(&b, 1, "return 1", "return false");
	printf("step with if: false (skipped)       %6.2f\n",
	       bench_run(rt, &b, ev, iters));
	wf_build(&b, 1, "return event.body.ticket.id", NULL);
	printf("step 'return event.body.ticket.id'  %6.2f\n",
	       bench_run(rt, &b, ev, iters));
	wf_build(&b, 1, "return json.decode(event.raw).ticket.id", NULL);
	printf("step 'json.decode(event.raw)...'    %6.2f\n",
	       bench_run(rt, &b, ev, iters));
	wf_build(&b, 3, "return event.body.ticket.id", NULL);
	printf("3-step run, each reads event.body   %6.2f\n",
	       bench_run(rt, &b, ev, iters / 3));
	wf_build(&b, 3, "return 1", NULL);
	printf("3-step run of 'return 1'            %6.2f\n",
	       bench_run(rt, &b, ev, iters / 3));
	printf("workflow if: false (expr runtime)   %6.2f\n",
	       bench_eval(ert, "return false", ev, iters));
	printf("workflow if: event.body.action      %6.2f\n",
	       bench_eval(ert, "return event.body.action == 'updated'", ev,
			  iters));
	lua_State *L = luaL_newstate();
	hf_lua_json_open(L);
	lua_pop(L, 1);
	printf("decode: jansson json_loadb only     %6.2f\n",
	       bench_decode(L, 0, iters));
	printf("decode: jansson + push into Lua     %6.2f\n",
	       bench_decode(L, 1, iters));
#ifdef NEW_TREE
	printf("decode: hf_lua_json_decode          %6.2f\n",
	       bench_decode(L, 2, iters));
	printf("copy of a decoded body (Lua->Lua)   %6.2f\n",
	       bench_decode(L, 4, iters));
#endif
#ifdef HAVE_CJSON
	printf("decode: lua-cjson (Debian 2.1.0)    %6.2f\n",
	       bench_decode(L, 3, iters));
#endif
	lua_close(L);
	hf_event_unref(ev);
	hf_luart_destroy(rt);
	hf_luart_destroy(ert);
	return 0;
}
