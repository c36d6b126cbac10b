// The demo's front page: ask the launcher for a session, then open the viewer on it.
// When every session is taken (HTTP 503), say so in the visitor's language and offer a retry.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let text = {};

  function lang() {
    const wanted = (navigator.languages || [navigator.language || "en"]).map((l) => l.slice(0, 2));
    return wanted.find((l) => l in MESSAGES) || "en";
  }

  function fmt(key, values) {
    return (text[key] || MESSAGES.en[key]).replace(/\{(\w+)\}/g, (_, k) => values[k]);
  }

  function show(which) {
    for (const id of ["starting", "full", "error"]) $(id).hidden = id !== which;
  }

  function sessionPage(session) {
    // the launcher's URL names USE_HOST; the visitor reaches us through this page's host and scheme
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = String(session.sessionURL).replace(/^wss?:\/\/USE_HOST/i, `${scheme}//${window.location.host}`);
    const query = new URLSearchParams({ sessionURL: url, secret: session.secret || "" });
    return `session.html?${query.toString()}`;
  }

  async function start() {
    show("starting");
    let resp;
    try {
      resp = await fetch("launcher/", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ application: CONFIG.application }),
      });
    } catch (err) {
      $("error-text").textContent = fmt("launcher.unreachable", {});
      show("error");
      return;
    }
    if (resp.status === 503) {
      const body = await resp.json().catch(() => ({}));
      if (/resources/i.test(body.error || "")) {
        $("full-text").textContent = fmt("launcher.full", { n: CONFIG.sessions });
        show("full");
        return;
      }
    }
    if (!resp.ok) {
      $("error-text").textContent = fmt("launcher.failed", { status: resp.status });
      show("error");
      return;
    }
    window.location.replace(sessionPage(await resp.json()));
  }

  let MESSAGES = { en: {} };
  let CONFIG = { application: "webviewer", sessions: "?" };
  Promise.all([fetch("launcher-messages.json").then((r) => r.json()), fetch("demo.json").then((r) => r.json())])
    .then(([messages, config]) => {
      MESSAGES = messages;
      CONFIG = config;
      const l = lang();
      text = { ...MESSAGES.en, ...MESSAGES[l] };
      document.documentElement.lang = l;
      document.title = text["launcher.title"];
      $("title").textContent = text["launcher.title"];
      $("starting-text").textContent = text["launcher.starting"];
      $("retry").textContent = text["launcher.retry"];
      $("error-retry").textContent = text["launcher.retry"];
      $("retry").addEventListener("click", start);
      $("error-retry").addEventListener("click", start);
      start();
    });
})();
