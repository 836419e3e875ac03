/* ui.js - the dashboard's script (ui.html), served at /ui/app.js and
 * embedded in the binary at build time (embed.c). Everything inserted into the
 * page goes through textContent (see el()), never parsed as markup. */
"use strict";
(function () {
	var TOKEN_KEY = "hookflow.token";
	var main = document.getElementById("main");
	var timers = [];
	var generation = 0; /* bumps on each navigation: late answers are dropped */
	var flashNext = null; /* a confirmation to show on the next page */
	var workflowsCache = null;
	var loadErrors = []; /* /api/workflows "errors": files that failed to load */

	/* --- DOM: every string becomes a text node; nothing is parsed as HTML --- */
	function el(tag, attrs) {
		var e = document.createElement(tag);
		if (attrs) {
			Object.keys(attrs).forEach(function (k) {
				var v = attrs[k];
				if (v === null || v === undefined || v === false) return;
				if (k === "text") e.textContent = String(v);
				else if (k === "class") e.className = v;
				else if (k === "href") e.setAttribute("href", safeHref(v));
				else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
				else e.setAttribute(k, v === true ? "" : String(v));
			});
		}
		for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
		return e;
	}
	function add(parent, child) {
		if (child === null || child === undefined || child === false) return;
		if (Array.isArray(child)) { child.forEach(function (c) { add(parent, c); }); return; }
		parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
	}
	/* Only in-page links and http(s) URLs become links. */
	function safeHref(v) {
		v = String(v);
		return /^(#|\/|https?:)/i.test(v) ? v : "#";
	}
	function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
	function link(href, text, attrs) {
		var a = el("a", attrs || {}, text);
		a.setAttribute("href", safeHref(href));
		return a;
	}

	/* --- formatting --- */
	function badge(status) {
		return el("span", { class: "badge s-" + String(status).replace(/[^a-z]/g, ""), "data-status": status }, status);
	}
	function ms(v) {
		if (v === null || v === undefined || isNaN(v)) return "–";
		if (v < 1000) return Math.round(v) + " ms";
		if (v < 60000) return (v / 1000).toFixed(v < 10000 ? 2 : 1) + " s";
		var m = Math.floor(v / 60000), s = Math.round((v % 60000) / 1000);
		if (m < 60) return m + " min " + s + " s";
		return Math.floor(m / 60) + " h " + (m % 60) + " min";
	}
	function t(iso) { return iso ? Date.parse(iso) : NaN; }
	function ago(iso) {
		if (!iso) return el("span", { class: "muted" }, "–");
		var d = (Date.now() - t(iso)) / 1000, s;
		if (d < 0) d = 0;
		if (d < 5) s = "just now";
		else if (d < 60) s = Math.floor(d) + " s ago";
		else if (d < 3600) s = Math.floor(d / 60) + " min ago";
		else if (d < 86400) s = Math.floor(d / 3600) + " h ago";
		else s = Math.floor(d / 86400) + " d ago";
		return el("time", { datetime: iso, title: iso }, s);
	}
	function duration(from, to) {
		if (!from) return "–";
		return ms((to ? t(to) : Date.now()) - t(from));
	}
	function pretty(v) {
		if (typeof v === "string") {
			try { return JSON.stringify(JSON.parse(v), null, 2); } catch (e) { return v; }
		}
		return JSON.stringify(v, null, 2);
	}
	/* Ids in full, or their random tail on a narrow window. */
	function shortId(id) {
		id = String(id);
		return [el("span", { class: "id-full" }, id), el("span", { class: "id-short", title: id }, "…" + id.slice(-10))];
	}
	/* The first line of an error, with file paths cut to their last part. */
	function shortError(e) {
		var line = String(e).split("\n")[0].replace(/(^|[\s(])[^\s:()]*\/([^\/\s:()]+:\d+:)/g, "$1$2");
		return line.length > 160 ? line.slice(0, 157) + "…" : line;
	}
	function qs(params) {
		var parts = [];
		Object.keys(params).forEach(function (k) {
			if (params[k]) parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
		});
		return parts.length ? "?" + parts.join("&") : "";
	}

	/* --- the admin API --- */
	function token() { return sessionStorage.getItem(TOKEN_KEY); }
	function ApiError(status, message) { this.status = status; this.message = message; }
	function api(method, path) {
		return fetch(path, {
			method: method,
			headers: { "Authorization": "Bearer " + (token() || "") },
			cache: "no-store"
		}).then(function (r) {
			return r.text().then(function (text) {
				var body = null;
				try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
				if (r.status === 401) {
					sessionStorage.removeItem(TOKEN_KEY);
					showLogin("The admin token was not accepted. Enter it again.");
					throw new ApiError(401, "unauthorized");
				}
				if (r.status >= 400)
					throw new ApiError(r.status, (body && body.error) || ("HTTP " + r.status));
				return body;
			});
		});
	}
	function workflows(force) {
		if (workflowsCache && !force) return Promise.resolve(workflowsCache);
		return api("GET", "/api/workflows").then(function (v) {
			workflowsCache = v.workflows || [];
			loadErrors = v.errors || [];
			return workflowsCache;
		});
	}

	/* --- page frame --- */
	function every(msInterval, fn) {
		var gen = generation;
		var id = setInterval(function () { if (gen === generation) fn(); }, msInterval);
		timers.push(id);
	}
	function live(on) {
		var l = document.getElementById("live");
		l.textContent = on ? "● live" : "";
		l.title = on ? "refreshing every 2 s" : "";
	}
	function flash(node, text, bad) {
		var f = el("div", { class: "flash" + (bad ? " bad" : ""), id: "flash", role: "status" }, text);
		node.insertBefore(f, node.firstChild);
		return f;
	}
	function failure(err) {
		if (err instanceof ApiError && err.status === 401) return;
		var msg = err && err.message ? err.message : String(err);
		flash(main, "Could not load: " + msg, true);
	}
	function emptyState(title, text, code) {
		return el("div", { class: "empty", "data-empty": "1" },
			el("strong", null, title), el("div", null, text),
			code ? el("pre", { class: "mono" }, code) : null);
	}
	function firstWebhookCurl(wfs) {
		var origin = location.origin;
		var wf = (wfs || []).filter(function (w) { return w.path && /POST/.test(w.methods); })[0];
		if (!wf) return null;
		return "curl -s " + origin + wf.path + " -H 'Content-Type: application/json' -d '{\"hello\":\"world\"}'";
	}
	function section(title, body) { return el("div", { class: "card" }, title ? el("h2", null, title) : null, body); }
	function table(head, rows, attrs) {
		return el("div", { class: "scroll" }, el("table", attrs || null,
			el("thead", null, el("tr", null, head.map(function (h) {
				return typeof h === "string" ? el("th", null, h) : el("th", { class: h.cls }, h.text);
			}))),
			el("tbody", null, rows)));
	}

	/* --- login --- */
	function showLogin(message) {
		stop();
		document.getElementById("logout").hidden = true;
		clear(main);
		var input = el("input", { id: "token", type: "password", autocomplete: "current-password",
			placeholder: "admin token", required: true, "aria-label": "Admin token" });
		var err = el("div", { class: "flash bad", id: "login-error", hidden: !message }, message || "");
		var form = el("form", { id: "login-form" },
			el("h1", null, "Sign in to hookflow"),
			el("div", { class: "muted" }, "Enter the admin token. `hookflow serve` prints it at start (\"admin token: …\") unless --admin-token or HOOKFLOW_ADMIN_TOKEN sets it. It is kept for this browser tab only."),
			err, input,
			el("button", { class: "primary", type: "submit", id: "login-btn" }, "Sign in"));
		form.addEventListener("submit", function (ev) {
			ev.preventDefault();
			var tok = input.value.trim();
			if (!tok) return;
			sessionStorage.setItem(TOKEN_KEY, tok);
			workflowsCache = null;
			api("GET", "/api/workflows").then(function (v) {
				workflowsCache = v.workflows || [];
				loadErrors = v.errors || [];
				route();
			}, function (e) {
				if (!(e instanceof ApiError && e.status === 401)) {
					err.hidden = false;
					err.textContent = "Cannot reach the server: " + e.message;
				}
			});
		});
		main.appendChild(el("div", { class: "login card" }, form));
		input.focus();
	}

	/* --- pages --- */
	var pages = {};

	/* The workflow files that failed to load, or null when none did. */
	function loadErrorsBox() {
		if (!loadErrors.length) return null;
		return el("div", { class: "flash bad", id: "load-errors", role: "alert" },
			el("strong", null, "Workflow files that failed to load"),
			el("div", null, "A webhook to such a file's path answers 503 with Retry-After (the sender retries) until it is fixed, unless its previous version is still active. Check it with `hookflow check`."),
			el("ul", null, loadErrors.map(function (e) {
				var where = e.file + (e.line ? ":" + e.line + (e.col ? ":" + e.col : "") : "");
				return el("li", { class: "mono", "data-load-error": e.file },
					where + ": " + e.message + (e.path ? " (path " + e.path + ")" : ""));
			})));
	}

	pages.workflows = function (gen) {
		main.appendChild(el("h1", null, "Workflows"));
		var box = el("div", { class: "card", id: "workflows" }, el("div", { class: "muted" }, "Loading…"));
		main.appendChild(box);
		function load() {
			return Promise.all([workflows(true), api("GET", "/api/runs?limit=1000&summary=1")]).then(function (res) {
				if (gen !== generation) return;
				var wfs = res[0], runs = res[1].runs || [];
				clear(box);
				add(box, loadErrorsBox());
				if (!wfs.length) {
					box.appendChild(emptyState("No workflows loaded",
						"Put a workflow file (*.yml) in the workflows directory; a running server loads it within a second. Check it first with:",
						"hookflow check workflows/"));
					return;
				}
				var now = Date.now(), windowMs = 5 * 60000;
				var rows = wfs.map(function (w) {
					var mine = runs.filter(function (r) { return r.workflow === w.name; });
					var last = mine[0];
					var recent = mine.filter(function (r) { return now - t(r.created_at) < windowMs; });
					var buckets = [0, 0, 0, 0, 0];
					recent.forEach(function (r) {
						var b = 4 - Math.min(4, Math.floor((now - t(r.created_at)) / 60000));
						buckets[b]++;
					});
					var peak = Math.max.apply(null, buckets.concat([1]));
					var spark = el("span", { class: "spark", title: "runs in each of the last 5 minutes" },
						buckets.map(function (n) {
							var s = el("span");
							s.style.height = Math.max(2, Math.round(18 * n / peak)) + "px";
							return s;
						}));
					return el("tr", { "data-workflow": w.name },
						el("td", null, link("#/runs" + qs({ workflow: w.name }), w.name, { class: "mono" }),
							w.description ? el("div", { class: "muted" }, w.description) : null),
						el("td", { class: "mono" }, w.path || (w.schedule ? "schedule: " +
							w.schedule.map(function (s) { return s.cron; }).join(", ") : "")),
						el("td", { class: "mono" }, w.methods),
						el("td", null, w.verify ? el("span", { class: "badge" }, w.verify) : el("span", { class: "muted" }, "none")),
						el("td", null, last ? [badge(last.status), " ", link("#/runs/" + encodeURIComponent(last.id), ago(last.created_at))]
							: el("span", { class: "muted" }, "never")),
						el("td", { "data-rpm": "1" }, (recent.length / 5).toFixed(1), spark));
				});
				box.appendChild(table(["Workflow", "Path", "Methods", "Verify", "Last run", "Runs/min (5 min)"], rows, { id: "workflows-table" }));
			});
		}
		every(5000, function () { load().catch(function () {}); });
		return load();
	};

	pages.runs = function (gen, params) {
		var wfSel = el("select", { id: "filter-workflow", "aria-label": "Workflow" }, el("option", { value: "" }, "all workflows"));
		var stSel = el("select", { id: "filter-status", "aria-label": "Status" },
			["", "queued", "running", "waiting", "succeeded", "failed", "cancelled"].map(function (s) {
				return el("option", { value: s }, s || "any status");
			}));
		stSel.value = params.status || "";
		function go() { location.hash = "#/runs" + qs({ workflow: wfSel.value, status: stSel.value }); }
		wfSel.addEventListener("change", go);
		stSel.addEventListener("change", go);
		main.appendChild(el("h1", null, "Runs"));
		main.appendChild(el("div", { class: "filters" },
			el("label", null, "Workflow", wfSel), el("label", null, "Status", stSel),
			el("span", { class: "muted" }, "Refreshing every 2 s")));
		var box = el("div", { class: "card", id: "runs" }, el("div", { class: "muted" }, "Loading…"));
		main.appendChild(box);
		live(true);
		workflows().then(function (wfs) {
			if (gen !== generation) return;
			wfs.forEach(function (w) { wfSel.appendChild(el("option", { value: w.name }, w.name)); });
			wfSel.value = params.workflow || "";
		}).catch(function () {});
		function load() {
			return api("GET", "/api/runs" + qs({ workflow: params.workflow, status: params.status, limit: 100 }))
				.then(function (v) {
					if (gen !== generation) return;
					var runs = v.runs || [];
					clear(box);
					if (!runs.length) {
						return workflows().then(function (wfs) {
							if (gen !== generation) return;
							var curl = firstWebhookCurl(wfs);
							box.appendChild(params.workflow || params.status
								? emptyState("No runs match these filters", "Choose another workflow or status, or send a webhook.", curl)
								: emptyState("No runs yet", curl ? "Send a first webhook and its run appears here:" : "Load a workflow, then send it a webhook.", curl));
						});
					}
					box.appendChild(table(["Run", "Workflow", "Status", { text: "Steps", cls: "hide-narrow" }, "Created", { text: "Duration", cls: "hide-narrow" }, { text: "Error", cls: "hide-narrow" }],
						runs.map(function (r) {
							var done = (r.steps || []).filter(function (s) { return s.status === "succeeded"; }).length;
							return el("tr", { "data-run": r.id, "data-status": r.status },
								el("td", null, link("#/runs/" + encodeURIComponent(r.id), shortId(r.id), { class: "mono" })),
								el("td", { class: "nowrap" }, link("#/runs" + qs({ workflow: r.workflow, status: params.status }), r.workflow)),
								el("td", null, badge(r.status)),
								el("td", { class: "hide-narrow" }, done + "/" + (r.steps || []).length),
								el("td", null, ago(r.created_at)),
								el("td", { class: "hide-narrow" }, duration(r.started_at || r.created_at, r.finished_at)),
								el("td", { class: "muted err hide-narrow" }, r.error ? shortError(r.error) : ""));
						}), { id: "runs-table" }));
				});
		}
		every(2000, function () { load().catch(function () {}); });
		return load();
	};

	function retryRunButton(run, after) {
		var b = el("button", { class: "primary", id: "retry-run" }, "Retry from failed step");
		b.addEventListener("click", function () {
			b.disabled = true;
			api("POST", "/api/runs/" + encodeURIComponent(run.id) + "/retry").then(function (v) {
				flashNext = "Run " + v.run + " was queued again from its failed step (attempt " + (run.attempt + 1) + "). The server picks it up within a second.";
				after();
			}, function (e) {
				b.disabled = false;
				if (e.status !== 401) flash(main, "Retry failed: " + e.message, true);
			});
		});
		return b;
	}

	/* A run not finished yet (queued, running, waiting) can be cancelled. */
	function cancelRunButton(run, after) {
		var b = el("button", { id: "cancel-run" }, "Cancel run");
		b.addEventListener("click", function () {
			b.disabled = true;
			api("POST", "/api/runs/" + encodeURIComponent(run.id) + "/cancel").then(function () {
				flashNext = "Run " + run.id + " was cancelled. A step already running finishes; no later step runs.";
				after();
			}, function (e) {
				b.disabled = false;
				if (e.status !== 401) flash(main, "Cancel failed: " + e.message, true);
			});
		});
		return b;
	}

	pages.run = function (gen, params, id) {
		var head = el("h1", null, "Run ", el("span", { class: "mono" }, id));
		main.appendChild(head);
		var box = el("div", { id: "run" }, el("div", { class: "card muted" }, "Loading…"));
		main.appendChild(box);
		function load() {
			return Promise.all([api("GET", "/api/runs/" + encodeURIComponent(id)), workflows().catch(function () { return []; })]).then(function (res) {
				if (gen !== generation) return;
				var r = res[0], wf = res[1].filter(function (w) { return w.name === r.workflow; })[0];
				clear(head);
				add(head, ["Run ", el("span", { class: "mono" }, r.id), " ", badge(r.status)]);
				if (r.status === "failed") head.appendChild(retryRunButton(r, function () { route(); }));
				if (["succeeded", "failed", "cancelled"].indexOf(r.status) < 0) head.appendChild(cancelRunButton(r, function () { route(); }));
				clear(box);
				box.appendChild(section(null, el("div", { class: "kv" },
					el("div", null, "Workflow"), el("div", null, link("#/runs" + qs({ workflow: r.workflow }), r.workflow), r.version ? el("span", { class: "muted" }, "  version " + String(r.version).slice(0, 12)) : null),
					el("div", null, "Event"), el("div", null, link("#/events/" + encodeURIComponent(r.event), r.event, { class: "mono", id: "event-link" })),
					el("div", null, "Attempt"), el("div", null, String(r.attempt)),
					el("div", null, "Created"), el("div", null, ago(r.created_at), el("span", { class: "muted" }, "  " + (r.created_at || ""))),
					el("div", null, "Finished"), el("div", null, r.finished_at ? [ago(r.finished_at), el("span", { class: "muted" }, "  " + r.finished_at)] : el("span", { class: "muted" }, "not yet")),
					el("div", null, "Duration"), el("div", null, duration(r.started_at || r.created_at, r.finished_at)))));
				if (r.error)
					box.appendChild(section("Error", el("pre", { class: "error", id: "run-error" }, r.error)));
				if (r.waiting)
					box.appendChild(section("Waiting", el("p", { id: "run-waiting" },
						{ sleep: "Sleeping", until: "Waiting until a time", signal: "Waiting for a signal" }[r.waiting.for] || ("Waiting (" + r.waiting.for + ")"),
						r.waiting.step ? [" at step ", el("span", { class: "mono" }, r.waiting.step)] : null,
						r.waiting.until ? [", until ", el("span", { class: "mono" }, r.waiting.until)] : null)));
				box.appendChild(section("Steps", timeline(r, wf)));
				if (r.history && r.history.length)
					box.appendChild(section("Earlier attempts", history(r.history)));
				if (r.status === "queued" || r.status === "running" || r.status === "waiting") live(true); else live(false);
			});
		}
		every(1500, function () {
			var b = document.querySelector("[data-run-status]");
			var st = b && b.getAttribute("data-run-status");
			if (st === "queued" || st === "running") load().catch(function () {});
		});
		return load();
	};

	/* The attempts before a retry, oldest first, each as it ended. */
	function history(list) {
		return el("div", { id: "run-history" }, list.map(function (h) {
			return el("div", { class: "step attempt", "data-attempt": String(h.attempt) },
				el("div", { class: "step-head" },
					el("span", { class: "name" }, "Attempt " + h.attempt),
					badge(h.status),
					h.finished_at ? el("span", { class: "muted" }, "finished " + h.finished_at) : null),
				h.error ? el("pre", { class: "error" }, h.error) : null,
				el("ul", { class: "logs" }, (h.steps || []).map(function (s) {
					return el("li", { "data-history-step": s.id },
						el("span", { class: "name mono" }, s.id), " ", badge(s.status),
						s.attempts > 1 ? el("span", { class: "muted" }, " " + s.attempts + " attempts") : null,
						s.error ? el("pre", { class: "error step-error" }, s.error) : null);
				})));
		}));
	}

	function timeline(r, wf) {
		var steps = (r.steps || []).slice();
		var seen = {};
		steps.forEach(function (s) { seen[s.id] = true; });
		/* Steps of the workflow that have not run yet. */
		if (wf && wf.steps) wf.steps.forEach(function (id) {
			if (!seen[id]) steps.push({ id: id, status: r.status === "failed" ? "not run" : "pending", pending: true });
		});
		var start = t(r.started_at || r.created_at);
		/* After a retry the run starts again, later than the steps it kept. */
		steps.forEach(function (s) { if (s.started_at) start = Math.min(start, t(s.started_at)); });
		var end = r.finished_at ? t(r.finished_at) : Date.now();
		steps.forEach(function (s) { if (s.finished_at) end = Math.max(end, t(s.finished_at)); });
		var total = Math.max(1, end - start);
		var box = el("div", { class: "timeline", "data-run-status": r.status });
		if (!steps.length) box.appendChild(el("div", { class: "muted" }, "No step has run yet."));
		steps.forEach(function (s) {
			var dur = s.started_at && s.finished_at ? t(s.finished_at) - t(s.started_at) : null;
			var track = el("div", { class: "track" });
			if (s.started_at) {
				var bar = el("div", { class: "bar s-" + s.status, title: ms(dur) });
				var from = Math.max(0, t(s.started_at) - start);
				bar.style.left = (100 * from / total).toFixed(2) + "%";
				bar.style.width = Math.max(0.6, 100 * (dur || 0) / total).toFixed(2) + "%";
				track.appendChild(bar);
			}
			var body = el("div", { class: "step", "data-step": s.id },
				el("div", { class: "step-head" },
					el("span", { class: "name" }, s.id),
					s.pending ? el("span", { class: "badge" }, s.status) : badge(s.status),
					el("span", { class: "muted" }, dur !== null ? ms(dur) : (s.status === "skipped" ? "condition was false" : "")),
					s.attempts > 1 ? el("span", { class: "muted" }, s.attempts + " attempts") : null,
					s.node ? el("span", { class: "muted node", title: "the node that ran this step" }, "on " + s.node) : null,
					s.started_at ? el("span", { class: "muted hide-narrow" }, "started " + s.started_at) : null),
				track);
			if (s.output !== undefined && s.output !== null)
				body.appendChild(el("details", { open: true }, el("summary", null, "Output"), el("pre", { class: "output" }, pretty(s.output))));
			if (s.logs && s.logs.length)
				body.appendChild(el("details", { open: true }, el("summary", null, "Logs (" + s.logs.length + ")"),
					el("ul", { class: "logs" }, s.logs.map(function (l) {
						return el("li", null, el("span", { class: "lvl lvl-" + l.level }, l.level), " ", l.message);
					}))));
			if (s.error)
				body.appendChild(el("pre", { class: "error step-error" }, s.error));
			box.appendChild(body);
		});
		return box;
	}

	pages.event = function (gen, params, id) {
		main.appendChild(el("h1", null, "Event ", el("span", { class: "mono" }, id)));
		var box = el("div", { id: "event" }, el("div", { class: "card muted" }, "Loading…"));
		main.appendChild(box);
		function load() {
			return api("GET", "/api/events/" + encodeURIComponent(id)).then(function (ev) {
				if (gen !== generation) return;
				clear(box);
				var replay = el("button", { class: "primary", id: "replay" }, "Replay event");
				replay.addEventListener("click", function () {
					replay.disabled = true;
					api("POST", "/api/events/" + encodeURIComponent(id) + "/replay").then(function (v) {
						var n = (v.runs || []).length;
						flashNext = n ? "Replayed the event: " + n + " new run" + (n === 1 ? "" : "s") + " queued (" + v.runs.join(", ") + ")."
							: "Replayed the event: no workflow matched it now, so no run was made.";
						route();
					}, function (e) {
						replay.disabled = false;
						if (e.status !== 401) flash(main, "Replay failed: " + e.message, true);
					});
				});
				box.appendChild(section(null, [el("div", { class: "kv" },
					el("div", null, "Request"), el("div", { class: "mono" }, ev.method + " " + ev.path),
					el("div", null, "Received"), el("div", null, ago(ev.received_at), el("span", { class: "muted" }, "  " + (ev.received_at || ""))),
					el("div", null, "Query"), el("div", { class: "mono" }, ev.query && Object.keys(ev.query).length ? JSON.stringify(ev.query) : "–"),
					el("div", null, "Path parameters"), el("div", { class: "mono" }, ev.params && Object.keys(ev.params).length ? JSON.stringify(ev.params) : "–")),
					el("div", { class: "filters" }, el("span"), replay,
						el("span", { class: "muted" }, "Runs the event again through the current workflows."))]));
				var runsBox = el("div", { id: "event-runs" });
				box.appendChild(section("Runs", runsBox));
				if (!ev.runs || !ev.runs.length) runsBox.appendChild(el("div", { class: "muted" }, "No run was made for this event."));
				else Promise.all(ev.runs.slice(-50).map(function (rid) {
					return api("GET", "/api/runs/" + encodeURIComponent(rid)).catch(function () { return { id: rid, status: "unknown" }; });
				})).then(function (runs) {
					if (gen !== generation) return;
					runsBox.appendChild(table(["Run", "Workflow", "Status", "Created"], runs.reverse().map(function (r) {
						return el("tr", { "data-run": r.id, "data-status": r.status },
							el("td", null, link("#/runs/" + encodeURIComponent(r.id), shortId(r.id), { class: "mono" })),
							el("td", null, r.workflow || ""), el("td", null, badge(r.status)), el("td", null, ago(r.created_at)));
					})));
				});
				if (ev.skipped && ev.skipped.length)
					box.appendChild(section("Skipped workflows", table(["Workflow", "Reason"], ev.skipped.map(function (s) {
						return el("tr", { "data-skipped": s.workflow }, el("td", { class: "mono" }, s.workflow), el("td", null, s.reason));
					}))));
				var hdrs = ev.headers || {};
				box.appendChild(section("Headers", Object.keys(hdrs).length ? table(["Name", "Value"], Object.keys(hdrs).sort().map(function (k) {
					return el("tr", null, el("td", { class: "mono" }, k), el("td", { class: "mono" }, String(hdrs[k])));
				}), { id: "event-headers" }) : el("div", { class: "muted" }, "none")));
				var body = ev.body || "";
				box.appendChild(section("Body" + (ev.body_encoding === "base64" ? " (base64: not UTF-8)" : ""),
					body ? el("pre", { id: "event-body" }, ev.body_encoding === "base64" ? body : pretty(body)) : el("div", { class: "muted" }, "empty")));
			});
		}
		return load();
	};

	function retryDeliveryButton(d, after) {
		var b = el("button", { class: "primary", "data-retry-delivery": d.id }, "Retry");
		b.addEventListener("click", function (ev) {
			ev.preventDefault();
			b.disabled = true;
			api("POST", "/api/deliveries/" + encodeURIComponent(d.id) + "/retry").then(function () {
				flashNext = "Delivery " + d.id + " is pending again and will be sent now.";
				after();
			}, function (e) {
				b.disabled = false;
				if (e.status !== 401) flash(main, "Retry failed: " + e.message, true);
			});
		});
		return b;
	}

	pages.deliveries = function (gen, params) {
		var stSel = el("select", { id: "filter-delivery-status", "aria-label": "Status" },
			["", "pending", "delivered", "failed"].map(function (s) { return el("option", { value: s }, s || "any status"); }));
		stSel.value = params.status || "";
		stSel.addEventListener("change", function () { location.hash = "#/deliveries" + qs({ status: stSel.value }); });
		main.appendChild(el("h1", null, "Deliveries"));
		main.appendChild(el("div", { class: "filters" }, el("label", null, "Status", stSel),
			el("span", { class: "muted" }, "Webhooks that steps sent with webhook.emit")));
		var box = el("div", { class: "card", id: "deliveries" }, el("div", { class: "muted" }, "Loading…"));
		main.appendChild(box);
		live(true);
		function load() {
			return api("GET", "/api/deliveries" + qs({ status: params.status })).then(function (v) {
				if (gen !== generation) return;
				var list = v.deliveries || [];
				clear(box);
				if (!list.length) {
					box.appendChild(emptyState(params.status ? "No " + params.status + " deliveries" : "No deliveries yet",
						"A step sends one with webhook.emit; it is delivered only if the step succeeds.",
						"webhook.emit(\"https://example.com/hook\", { ticket = event.body.ticket }, { secret = env(\"HOOK_SECRET\") })"));
					return;
				}
				box.appendChild(table(["Delivery", "URL", "Status", "Attempts", "Last HTTP", { text: "Updated", cls: "hide-narrow" }, ""],
					list.map(function (d) {
						return el("tr", { "data-delivery": d.id, "data-status": d.status },
							el("td", null, link("#/deliveries/" + encodeURIComponent(d.id), shortId(d.id), { class: "mono" })),
							el("td", { class: "mono" }, d.url),
							el("td", null, badge(d.status)),
							el("td", null, d.attempts + (d.max_attempts ? "/" + d.max_attempts : "")),
							el("td", null, d.last_status === null || d.last_status === undefined ? (d.last_error ? "error" : "–") : String(d.last_status)),
							el("td", { class: "hide-narrow" }, ago(d.updated_at)),
							el("td", null, d.status === "failed" ? retryDeliveryButton(d, function () { route(); }) : null));
					}), { id: "deliveries-table" }));
			});
		}
		every(2000, function () { load().catch(function () {}); });
		return load();
	};

	pages.delivery = function (gen, params, id) {
		main.appendChild(el("h1", null, "Delivery ", el("span", { class: "mono" }, id)));
		var box = el("div", { id: "delivery" }, el("div", { class: "card muted" }, "Loading…"));
		main.appendChild(box);
		function load() {
			return api("GET", "/api/deliveries/" + encodeURIComponent(id)).then(function (d) {
				if (gen !== generation) return;
				clear(box);
				box.appendChild(section(null, [el("div", { class: "kv" },
					el("div", null, "Status"), el("div", null, badge(d.status)),
					el("div", null, "URL"), el("div", { class: "mono" }, d.url),
					el("div", null, "Attempts"), el("div", null, d.attempts + (d.max_attempts ? " of " + d.max_attempts : "")),
					el("div", null, "From"), el("div", null, d.run ? link("#/runs/" + encodeURIComponent(d.run), d.run, { class: "mono" }) : "–", d.step ? " step " + d.step : ""),
					el("div", null, "Next attempt"), el("div", null, d.status === "pending" && d.next_at ? d.next_at : "–"),
					el("div", null, "Last error"), el("div", null, d.last_error || "–")),
					d.status !== "delivered" ? el("div", { class: "filters" }, el("span"), retryDeliveryButton(d, function () { route(); })) : null]));
				var log = d.attempts_log || [];
				box.appendChild(section("Attempts", log.length ? table(["#", "At", "HTTP status", "Duration", "Error"], log.map(function (a) {
					var ok = a.status >= 200 && a.status < 300;
					return el("tr", { "data-attempt": a.n },
						el("td", null, String(a.n)), el("td", null, ago(a.at)),
						el("td", null, a.status === null || a.status === undefined ? badge("failed") : el("span", { class: "badge " + (ok ? "s-succeeded" : "s-failed") }, String(a.status))),
						el("td", null, ms(a.duration_ms)), el("td", { class: "muted" }, a.error || ""));
				}), { id: "attempts-table" }) : el("div", { class: "muted" }, "No attempt yet.")));
				if (d.payload !== undefined && d.payload !== null)
					box.appendChild(section("Payload", el("pre", null, pretty(d.payload))));
			});
		}
		every(2000, function () { load().catch(function () {}); });
		return load();
	};

	/* --- routing: #/workflows, #/runs?workflow=&status=, #/runs/ID, #/events/ID,
	 * #/deliveries?status=, #/deliveries/ID --- */
	function stop() {
		generation++;
		timers.forEach(clearInterval);
		timers = [];
		live(false);
	}
	function parseHash() {
		var h = location.hash.replace(/^#\/?/, "");
		var q = h.indexOf("?");
		var path = q < 0 ? h : h.slice(0, q), params = {};
		if (q >= 0) h.slice(q + 1).split("&").forEach(function (p) {
			var i = p.indexOf("=");
			if (i > 0) params[decodeURIComponent(p.slice(0, i))] = decodeURIComponent(p.slice(i + 1).replace(/\+/g, " "));
		});
		var parts = path.split("/").filter(Boolean).map(decodeURIComponent);
		return { parts: parts, params: params };
	}
	function route() {
		stop();
		if (!token()) { showLogin(); return; }
		document.getElementById("logout").hidden = false;
		var r = parseHash(), p = r.parts, page, arg = null, nav;
		if (!p.length || p[0] === "workflows") { page = pages.workflows; nav = "workflows"; }
		else if (p[0] === "runs" && p[1]) { page = pages.run; arg = p[1]; nav = "runs"; }
		else if (p[0] === "runs") { page = pages.runs; nav = "runs"; }
		else if (p[0] === "events" && p[1]) { page = pages.event; arg = p[1]; nav = "runs"; }
		else if (p[0] === "deliveries" && p[1]) { page = pages.delivery; arg = p[1]; nav = "deliveries"; }
		else if (p[0] === "deliveries") { page = pages.deliveries; nav = "deliveries"; }
		else { page = pages.workflows; nav = "workflows"; }
		Array.prototype.forEach.call(document.querySelectorAll("[data-nav]"), function (a) {
			a.className = a.getAttribute("data-nav") === nav ? "active" : "";
		});
		clear(main);
		var gen = generation;
		var pending = flashNext;
		flashNext = null;
		var done = page(gen, r.params, arg);
		if (pending) flash(main, pending);
		if (done && done.catch) done.catch(function (e) { if (gen === generation) failure(e); });
	}
	document.getElementById("logout").addEventListener("click", function () {
		sessionStorage.removeItem(TOKEN_KEY);
		workflowsCache = null;
		showLogin("Signed out.");
	});
	window.addEventListener("hashchange", route);
	route();
})();
