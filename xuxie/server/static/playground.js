/* xuxie playground: talks to the OpenAI-compatible server that serves this page.
 *
 * GET  /v1/models       fills the model list
 * POST /v1/completions  {"stream": true, "logprobs": 5} read as server-sent events with fetch +
 *                       a stream reader (EventSource cannot POST); every generated piece becomes
 *                       a <span class="piece"> with the model's top alternatives at that point.
 *
 * Plain script, no build step, no external resources. Everything user- or model-written is put
 * in the page with textContent, never as HTML.
 */
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const STORE = "xuxie.playground.";
  const DEFAULTS = { temperature: "0.8", top_p: "1", top_k: "0", max_tokens: "200", seed: "" };
  const SLIDERS = ["temperature", "top_p", "top_k", "max_tokens"];
  const FINISH_TEXT = {
    stop: "finished: the model ended the text (stop)",
    length: "finished: reached max tokens (length)",
    user: "stopped by you",
    error: "failed",
    closed: "the connection closed before the end",
  };

  const el = {
    model: $("model"), modelInfo: $("model_info"), context: $("context"), contextField: $("context_field"), prompt: $("prompt"), promptLabel: $("prompt_label"),
    seed: $("seed"), apiKey: $("api_key"), generate: $("generate"), stop: $("stop"),
    cont: $("continue"), copy: $("copy"), reset: $("reset"), output: $("output"),
    status: $("status"), error: $("error"), popup: $("alternatives"),
  };
  const popupHead = el.popup.querySelector(".alt-head");
  const popupList = el.popup.querySelector(".alt-list");
  const popupFoot = el.popup.querySelector(".alt-foot");

  let models = [];          // the entries of GET /v1/models
  let run = null;           // the generation shown in #output (also after it ended)
  let runCounter = 0;
  let statusTimer = null;

  // ------------------------------------------------------------------ storage (never fatal)
  function load(key, fallback) {
    try {
      const v = window.localStorage.getItem(STORE + key);
      return v === null ? fallback : v;
    } catch (_) {
      return fallback;
    }
  }
  function save(key, value) {
    try { window.localStorage.setItem(STORE + key, value); } catch (_) { /* private mode: not kept */ }
  }

  // ------------------------------------------------------------------ errors and status
  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = false;
  }
  function clearError() {
    el.error.textContent = "";
    el.error.hidden = true;
  }
  /** The message of an HTTP error response: the OpenAI error shape, else its text, else its status. */
  async function errorMessage(response) {
    let text = "";
    try { text = await response.text(); } catch (_) { /* nothing to read */ }
    let message = "";
    try {
      const body = JSON.parse(text);
      const e = body && body.error;
      if (e && typeof e === "object") message = e.message || e.type || "";
      else if (typeof e === "string") message = e;
      else if (body && typeof body.detail === "string") message = body.detail;
      else if (body && Array.isArray(body.detail)) message = body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    } catch (_) {
      message = text.trim().slice(0, 500);
    }
    const status = `HTTP ${response.status}${response.statusText ? " " + response.statusText : ""}`;
    return message ? `${message} (${status})` : status;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    const key = el.apiKey.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    return headers;
  }

  // ------------------------------------------------------------------ models
  function currentModel() {
    return models.find((m) => m.id === el.model.value) || null;
  }
  function isSeq2seq() {
    const m = currentModel();
    return Boolean(m && m.xuxie && (m.xuxie.seq2seq || m.xuxie.arch === "seq2seq"));
  }

  function describeModel(m) {
    const x = (m && m.xuxie) || {};
    const parts = [x.arch, x.tokenizer && `${x.tokenizer} tokens`, x.mode && `${x.mode} mode`].filter(Boolean);
    if (typeof x.vocab_size === "number") parts.push(`${x.vocab_size.toLocaleString("en-US")} token vocabulary`);
    if (Array.isArray(x.labels) && x.labels.length) parts.push(`labels: ${x.labels.join(", ")}`);
    return parts.join(" · ");
  }

  function onModelChange() {
    const m = currentModel();
    el.modelInfo.textContent = m ? describeModel(m) : "";
    el.promptLabel.textContent = isSeq2seq() ? "Input (the model answers it)" : "Prompt";
    const labels = m && m.xuxie && Array.isArray(m.xuxie.labels) ? m.xuxie.labels.map(String) : [];
    const keep = el.context.value;
    el.context.replaceChildren(new Option("none", ""));
    for (const label of labels) el.context.append(new Option(label, label));
    el.context.value = labels.includes(keep) ? keep : "";
    el.contextField.hidden = labels.length === 0;
    if (m) save("model", m.id);
    updateButtons();
  }

  async function loadModels() {
    el.model.disabled = true;
    let response;
    try {
      response = await fetch("/v1/models", { headers: authHeaders() });
    } catch (err) {
      setModelOptions([], "server not reachable");
      showError(`Could not reach the server for the model list: ${err.message}`);
      return;
    }
    if (!response.ok) {
      const message = await errorMessage(response);
      setModelOptions([], "no models");
      showError(response.status === 401 || response.status === 403
        ? `The server refused the model list: ${message}. Enter the API key in the settings.`
        : `Could not load the model list: ${message}`);
      return;
    }
    let body;
    try {
      body = await response.json();
    } catch (err) {
      setModelOptions([], "no models");
      showError(`The model list is not JSON: ${err.message}`);
      return;
    }
    const list = Array.isArray(body && body.data) ? body.data.filter((m) => m && typeof m.id === "string") : [];
    if (!list.length) {
      setModelOptions([], "no models");
      showError("The server lists no models.");
      return;
    }
    if (el.error.textContent.startsWith("The server refused the model list")
        || el.error.textContent.startsWith("Could not")) clearError();
    setModelOptions(list);
  }

  function setModelOptions(list, emptyText) {
    const previous = el.model.value || load("model", "");
    models = list;
    el.model.replaceChildren();
    if (!list.length) {
      const opt = document.createElement("option");
      opt.value = "";
      opt.textContent = emptyText || "no models";
      el.model.append(opt);
      el.model.disabled = true;
    } else {
      for (const m of list) {
        const opt = document.createElement("option");
        opt.value = m.id;
        opt.textContent = m.id;
        const info = describeModel(m);
        if (info) opt.title = info;
        el.model.append(opt);
      }
      if (list.some((m) => m.id === previous)) el.model.value = previous;
      el.model.disabled = false;
    }
    onModelChange();
  }

  // ------------------------------------------------------------------ settings
  function bindSlider(name) {
    const range = $(name);
    const num = $(`${name}_value`);
    const min = Number(range.min), max = Number(range.max);
    const stored = load(name, DEFAULTS[name]);
    range.value = stored;
    num.value = range.value;
    range.addEventListener("input", () => {
      num.value = range.value;
      save(name, range.value);
    });
    num.addEventListener("input", () => {
      if (num.value === "" || !Number.isFinite(Number(num.value))) return;
      const v = Math.min(max, Math.max(min, Number(num.value)));
      range.value = String(v);
      save(name, range.value);
    });
    num.addEventListener("change", () => { num.value = range.value; });
  }

  function resetSettings() {
    for (const name of SLIDERS) {
      $(name).value = DEFAULTS[name];
      $(`${name}_value`).value = DEFAULTS[name];
      save(name, DEFAULTS[name]);
    }
    el.seed.value = "";
    save("seed", "");
  }

  /** The request body, or a string saying what is wrong with the settings. */
  function requestBody(prompt) {
    const model = el.model.value;
    if (!model) return "Choose a model first (the server lists none yet).";
    const body = {
      model,
      prompt,
      max_tokens: parseInt($("max_tokens").value, 10),
      temperature: Number($("temperature").value),
      top_p: Number($("top_p").value),
      top_k: parseInt($("top_k").value, 10),
      stream: true,
      logprobs: 5,
    };
    if (!el.contextField.hidden && el.context.value) body.context = el.context.value;
    const seed = el.seed.value.trim();
    if (seed !== "") {
      if (!/^\d+$/.test(seed) || !Number.isSafeInteger(Number(seed))) {
        return "The seed must be a whole number from 0 to 9007199254740991 (or empty for a random one).";
      }
      body.seed = Number(seed);
    }
    return body;
  }

  // ------------------------------------------------------------------ generation
  function updateButtons() {
    const running = Boolean(run && run.running);
    el.generate.disabled = !el.model.value;
    el.stop.disabled = !running;
    const hasText = Boolean(run && run.pieces.length);
    el.cont.disabled = running || !hasText || isSeq2seq();
    el.copy.disabled = !hasText;
  }

  function generatedText(upTo) {
    if (!run) return "";
    const end = upTo === undefined ? run.pieces.length : upTo;
    let text = "";
    for (let i = 0; i < end; i++) text += run.pieces[i].text;
    return text;
  }

  function formatStatus(r) {
    const parts = [];
    const n = r.tokens;
    parts.push(`${n} token${n === 1 ? "" : "s"}`);
    const now = r.endTime || performance.now();
    if (r.firstTime !== null && n > 0) {
      // speed over the streaming itself: from the first piece to now (or the end)
      const seconds = (now - r.firstTime) / 1000;
      const rate = n > 1 && seconds > 0 ? (n - 1) / seconds : null;
      parts.push(rate === null ? "– tokens/s" : `${rate.toFixed(1)} tokens/s`);
      parts.push(`first token after ${((r.firstTime - r.startTime) / 1000).toFixed(2)} s`);
    }
    if (r.running) return `Generating… ${parts.join(" · ")}`;
    const reason = FINISH_TEXT[r.finish] || (r.finish ? `finished: ${r.finish}` : "");
    return `${parts.join(" · ")}${reason ? " · " + reason : ""}`;
  }

  function renderStatus() {
    if (!run) return;
    el.status.textContent = formatStatus(run);
    el.status.classList.toggle("running", run.running);
    el.status.setAttribute("aria-busy", run.running ? "true" : "false");  // read out once it ends, not 4 times a second
    el.status.dataset.state = run.running ? "running" : (run.finish || "done");
    el.status.dataset.run = String(run.id);
  }

  function startStatusTimer() {
    stopStatusTimer();
    statusTimer = window.setInterval(renderStatus, 250);
  }
  function stopStatusTimer() {
    if (statusTimer !== null) window.clearInterval(statusTimer);
    statusTimer = null;
  }

  function endRun(r, finish) {
    if (!r.running) return;
    r.running = false;
    r.finish = r.finish || finish;
    r.endTime = performance.now();
    if (r === run) {
      stopStatusTimer();
      renderStatus();
      updateButtons();
    }
  }

  function stop() {
    if (!run || !run.running) return;
    run.finish = "user";
    endRun(run, "user");
    run.controller.abort();
  }

  async function generate() {
    hidePopup();
    const prompt = el.prompt.value;
    const body = requestBody(prompt);
    if (typeof body === "string") {
      showError(body);
      return;
    }
    if (run && run.running) {  // a new generation replaces the running one
      run.finish = "replaced";
      endRun(run, "replaced");
      run.controller.abort();
    }
    clearError();
    const r = {
      id: ++runCounter, prompt, seq2seq: isSeq2seq(), controller: new AbortController(), pieces: [],
      tokens: 0, running: true, finish: null, startTime: performance.now(), firstTime: null, endTime: null,
      done: false,
    };
    run = r;

    el.output.replaceChildren();
    if (prompt) {
      const p = document.createElement("span");
      p.className = "prompt-text";
      p.textContent = prompt;
      el.output.append(p);
    }
    if (r.seq2seq) {
      const sep = document.createElement("span");
      sep.className = "separator";
      sep.textContent = "answer:";
      el.output.append(sep);
    }
    renderStatus();
    updateButtons();
    startStatusTimer();

    try {
      const response = await fetch("/v1/completions", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
        signal: r.controller.signal,
      });
      if (!response.ok) {
        const message = await errorMessage(response);
        if (r === run && r.running) showError(message);
        endRun(r, "error");
        return;
      }
      const type = response.headers.get("Content-Type") || "";
      if (type.includes("application/json")) {  // a server that ignored "stream": one whole answer
        const obj = await response.json();
        if (r === run) handleEvent(r, obj);
      } else {
        await readEvents(r, response);
      }
      endRun(r, r.done ? (r.finish || "stop") : "closed");
    } catch (err) {
      if (err && err.name === "AbortError") {
        endRun(r, r.finish || "user");
        return;
      }
      if (r === run && r.running) showError(`The request failed: ${err && err.message ? err.message : err}`);
      endRun(r, "error");
    }
  }

  /** Read a text/event-stream body: `data: {json}` lines, ending with `data: [DONE]`. */
  async function readEvents(r, response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let pending = [];  // data lines of an event that did not parse alone (a multi-line event)

    const line = (raw) => {
      const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (text === "") {  // end of an event
        if (pending.length) {
          const data = pending.join("\n");
          pending = [];
          dispatch(r, data, true);
        }
        return;
      }
      if (text.startsWith(":")) return;  // a comment (keep-alive)
      if (!text.startsWith("data:")) return;  // event:, id:, retry: are not used
      let data = text.slice(5);
      if (data.startsWith(" ")) data = data.slice(1);
      if (pending.length) {
        pending.push(data);
        return;
      }
      if (!dispatch(r, data, false)) pending.push(data);
    };

    while (true) {
      const { value, done } = await reader.read();
      if (r !== run || !r.running) {  // stopped or replaced: drop whatever still arrives
        try { await reader.cancel(); } catch (_) { /* already closed */ }
        return;
      }
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const raw = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        line(raw);
        if (r.done || !r.running) break;
      }
      if (r.done || !r.running) {
        try { await reader.cancel(); } catch (_) { /* already closed */ }
        return;
      }
      if (done) {
        if (buffer) line(buffer);
        line("");
        return;
      }
    }
  }

  /** One event's data; false when it is not (yet) whole JSON and `final` is false. */
  function dispatch(r, data, final) {
    if (data === "[DONE]") {
      r.done = true;
      return true;
    }
    let obj;
    try {
      obj = JSON.parse(data);
    } catch (err) {
      if (!final) return false;
      showError(`The server sent an event that is not JSON: ${data.slice(0, 200)}`);
      r.finish = "error";
      r.done = true;
      return true;
    }
    handleEvent(r, obj);
    return true;
  }

  function handleEvent(r, obj) {
    if (r !== run || !r.running) return;
    if (obj && obj.error) {
      const e = obj.error;
      const message = typeof e === "string" ? e : (e.message || e.type || JSON.stringify(e));
      showError(`The generation failed: ${message}`);
      r.finish = "error";
      r.done = true;
      return;
    }
    const choice = obj && Array.isArray(obj.choices) ? obj.choices[0] : null;
    if (!choice) return;
    appendChoice(r, choice);
    if (choice.finish_reason) {
      r.finish = choice.finish_reason;
    }
  }

  function appendChoice(r, choice) {
    const text = typeof choice.text === "string" ? choice.text : "";
    const lp = choice.logprobs;
    const stick = isScrolledToBottom();
    const frag = document.createDocumentFragment();
    if (lp && Array.isArray(lp.tokens) && lp.tokens.length && lp.tokens.join("") === text) {
      lp.tokens.forEach((token, i) => {
        const logprob = Array.isArray(lp.token_logprobs) ? lp.token_logprobs[i] : null;
        const top = Array.isArray(lp.top_logprobs) ? lp.top_logprobs[i] : null;
        frag.append(makePiece(r, token, logprob, top));
      });
      r.tokens += lp.tokens.length;
    } else if (text) {  // no per-token detail: the text as one piece
      frag.append(makePiece(r, text, null, null));
      r.tokens += lp && Array.isArray(lp.tokens) ? lp.tokens.length : 1;
    } else {
      return;
    }
    if (r.firstTime === null) r.firstTime = performance.now();
    el.output.append(frag);
    if (stick) el.output.scrollTop = el.output.scrollHeight;
    updateButtons();
  }

  function makePiece(r, text, logprob, top) {
    const index = r.pieces.length;
    const span = document.createElement("span");
    span.className = "piece";
    span.textContent = text;
    span.dataset.index = String(index);
    span.tabIndex = index === 0 ? 0 : -1;  // roving tabindex: Tab reaches the text once, arrows move
    const hasLogprob = typeof logprob === "number" && Number.isFinite(logprob);
    if (hasLogprob) {
      const p = Math.exp(logprob);
      span.style.setProperty("--p", p.toFixed(3));
      span.dataset.p = p.toFixed(4);
      span.setAttribute("aria-label", `${text} (${formatPercent(p)})`);
    }
    const hasTop = top && typeof top === "object" && Object.keys(top).length > 0;
    if (!hasLogprob && !hasTop) span.classList.add("no-alternatives");
    r.pieces.push({ text, logprob: hasLogprob ? logprob : null, top: hasTop ? top : null, el: span });
    return span;
  }

  function isScrolledToBottom() {
    const o = el.output;
    return o.scrollHeight - o.scrollTop - o.clientHeight < 40;
  }

  // ------------------------------------------------------------------ alternatives popup
  let popupPiece = null;   // the span the popup is about
  let popupPinned = false; // opened by click/focus: stays until dismissed
  let hideTimer = null;

  function formatPercent(p) {
    const pct = p * 100;
    if (pct >= 99.95) return "100%";
    if (pct >= 1) return `${pct.toFixed(1)}%`;
    if (pct >= 0.01) return `${pct.toFixed(2)}%`;
    return "<0.01%";
  }

  /** The text with whitespace made visible (␣ space, ⏎ line break, ⇥ tab), as DOM nodes. */
  function visibleText(text) {
    const frag = document.createDocumentFragment();
    if (text === "") {
      const s = document.createElement("span");
      s.className = "ws";
      s.textContent = "∅ (nothing)";
      frag.append(s);
      return frag;
    }
    let plain = "";
    const flush = () => {
      if (plain) frag.append(document.createTextNode(plain));
      plain = "";
    };
    for (const ch of text) {
      let sym = null;
      if (ch === " ") sym = "␣";
      else if (ch === "\n") sym = "⏎";
      else if (ch === "\t") sym = "⇥";
      else if (ch === "\r") sym = "␍";
      else if (ch === "\u3000") sym = "□";  // the ideographic (full-width) space
      else if (ch.charCodeAt(0) < 0x20) sym = String.fromCharCode(0x2400 + ch.charCodeAt(0));
      if (sym === null) {
        plain += ch;
      } else {
        flush();
        const s = document.createElement("span");
        s.className = "ws";
        s.textContent = sym;
        frag.append(s);
      }
    }
    flush();
    return frag;
  }

  function alternativesOf(piece) {
    const entries = [];
    if (piece.top) {
      for (const [text, lp] of Object.entries(piece.top)) {
        if (typeof lp === "number" && !Number.isNaN(lp)) entries.push({ text, logprob: lp });
      }
    }
    if (!entries.some((e) => e.text === piece.text) && piece.logprob !== null) {
      entries.push({ text: piece.text, logprob: piece.logprob, outside: true });
    }
    entries.sort((a, b) => b.logprob - a.logprob);
    return entries;
  }

  function showPopup(span, pinned) {
    if (!run) return;
    const index = Number(span.dataset.index);
    const piece = run.pieces[index];
    if (!piece || piece.el !== span) return;
    cancelHide();
    if (popupPiece && popupPiece !== span) popupPiece.classList.remove("active");
    popupPiece = span;
    if (pinned) popupPinned = true;
    else if (el.popup.hidden) popupPinned = false;
    span.classList.add("active");

    const entries = alternativesOf(piece);
    const canPick = !run.seq2seq;
    popupHead.textContent = entries.length
      ? `Piece ${index + 1}: the model’s top choices${canPick ? " — click one to continue from there" : ""}`
      : `Piece ${index + 1}: the server sent no alternatives`;
    popupList.replaceChildren();
    let shown = 0;
    for (const e of entries) {
      const p = Math.exp(e.logprob);
      shown += e.outside ? 0 : p;
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "alternative";
      b.dataset.text = e.text;
      b.dataset.index = String(index);
      b.tabIndex = -1;
      const chosen = e.text === piece.text;
      if (chosen) {
        b.classList.add("chosen");
        b.setAttribute("aria-current", "true");
      }
      if (!canPick) b.disabled = true;
      const t = document.createElement("span");
      t.className = "alt-text";
      t.append(visibleText(e.text));
      t.title = codePoints(e.text);  // tells ":" from "："
      const pr = document.createElement("span");
      pr.className = "alt-prob";
      pr.textContent = formatPercent(p) + (chosen ? " ✓" : "");
      const bar = document.createElement("span");
      bar.className = "alt-bar";
      bar.style.setProperty("--w", `${Math.max(0.5, p * 100).toFixed(1)}%`);
      b.append(t, pr, bar);
      b.setAttribute("aria-label", `${describeWhitespace(e.text)}, ${formatPercent(p)}${chosen ? ", chosen" : ""}`);
      li.append(b);
      popupList.append(li);
    }
    const rest = 1 - shown;
    const notes = [];
    if (entries.some((e) => e.outside)) notes.push("✓ was sampled from outside the top choices");
    if (piece.top && rest > 0.005) notes.push(`all other pieces: ${formatPercent(rest)}`);
    if (!canPick) notes.push("a seq2seq answer cannot be steered from here");
    popupFoot.textContent = notes.join(" · ");
    el.popup.hidden = false;
    positionPopup(span);
  }

  function codePoints(text) {
    const cps = [...text].map((c) => "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0"));
    return cps.length <= 4 ? `${JSON.stringify(text)} ${cps.join(" ")}` : JSON.stringify(text);
  }

  function describeWhitespace(text) {
    if (text === "") return "nothing";
    return text.replace(/ /g, "space ").replace(/\n/g, "line break ").replace(/\t/g, "tab ").trim() || text;
  }

  function positionPopup(span) {
    const rects = span.getClientRects();
    const r = rects.length ? rects[rects.length - 1] : span.getBoundingClientRect();
    const pop = el.popup;
    pop.style.left = "0px";
    pop.style.top = "0px";
    const w = pop.offsetWidth, h = pop.offsetHeight;
    const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    let left = Math.min(Math.max(4, r.left), vw - w - 4);
    // right against the piece, so the pointer reaches the popup without crossing the next line
    let top = r.bottom + 2;
    if (top + h > vh - 4 && r.top - h - 2 >= 4) top = r.top - h - 2;
    pop.style.left = `${Math.max(4, left)}px`;
    pop.style.top = `${Math.max(4, top)}px`;
  }

  function hidePopup() {
    cancelHide();
    if (popupPiece) popupPiece.classList.remove("active");
    popupPiece = null;
    popupPinned = false;
    el.popup.hidden = true;
  }
  function scheduleHide() {
    if (popupPinned) return;
    cancelHide();
    hideTimer = window.setTimeout(hidePopup, 300);
  }
  function cancelHide() {
    if (hideTimer !== null) window.clearTimeout(hideTimer);
    hideTimer = null;
  }

  function pickAlternative(button) {
    if (!run || run.seq2seq) return;
    const index = Number(button.dataset.index);
    if (!(index >= 0 && index < run.pieces.length)) return;
    const text = button.dataset.text;
    el.prompt.value = run.prompt + generatedText(index) + text;
    hidePopup();
    generate();
  }

  let quietFocus = false;  // focus a piece without opening its popup (back from the popup by Escape)
  function focusPiece(span, quiet) {
    if (!span) return;
    for (const p of el.output.querySelectorAll('.piece[tabindex="0"]')) p.tabIndex = -1;
    span.tabIndex = 0;
    quietFocus = Boolean(quiet);
    span.focus();
    quietFocus = false;
  }

  // ------------------------------------------------------------------ events
  function pieceFrom(target) {
    return target instanceof Element ? target.closest(".piece") : null;
  }

  el.output.addEventListener("mouseover", (ev) => {
    const span = pieceFrom(ev.target);
    if (span && span !== popupPiece) showPopup(span, false);  // hovering previews, also when one is pinned
    else if (span) cancelHide();
  });
  el.output.addEventListener("mouseout", (ev) => {
    const span = pieceFrom(ev.target);
    if (span && !span.contains(ev.relatedTarget)) scheduleHide();
  });
  el.output.addEventListener("click", (ev) => {
    const span = pieceFrom(ev.target);
    if (!span) return;
    showPopup(span, true);
  });
  el.output.addEventListener("focusin", (ev) => {
    const span = pieceFrom(ev.target);
    if (span) {
      for (const p of el.output.querySelectorAll('.piece[tabindex="0"]')) if (p !== span) p.tabIndex = -1;
      span.tabIndex = 0;  // Tab comes back to the piece last focused
      if (!quietFocus) showPopup(span, true);
    }
  });
  el.output.addEventListener("keydown", (ev) => {
    const span = pieceFrom(ev.target);
    if (!span || !run) return;
    const index = Number(span.dataset.index);
    const go = (i) => {
      const piece = run.pieces[Math.max(0, Math.min(run.pieces.length - 1, i))];
      if (piece) focusPiece(piece.el);
    };
    if (ev.key === "ArrowRight") { go(index + 1); ev.preventDefault(); }
    else if (ev.key === "ArrowLeft") { go(index - 1); ev.preventDefault(); }
    else if (ev.key === "Home") { go(0); ev.preventDefault(); }
    else if (ev.key === "End") { go(run.pieces.length - 1); ev.preventDefault(); }
    else if (ev.key === "Enter" || ev.key === " " || ev.key === "ArrowDown") {
      showPopup(span, true);
      popupPinned = true;
      const first = el.popup.querySelector(".alternative:not(:disabled)");
      if (first) first.focus();
      ev.preventDefault();
    } else if (ev.key === "Escape") {
      hidePopup();
      ev.stopPropagation();
    }
  });
  el.output.addEventListener("focusout", (ev) => {
    if (!el.popup.contains(ev.relatedTarget) && !pieceFrom(ev.relatedTarget)) {
      popupPinned = false;
      scheduleHide();
    }
  });

  el.popup.addEventListener("mouseenter", cancelHide);
  el.popup.addEventListener("mouseleave", () => scheduleHide());
  el.popup.addEventListener("click", (ev) => {
    const b = ev.target instanceof Element ? ev.target.closest(".alternative") : null;
    if (b && !b.disabled) pickAlternative(b);
  });
  el.popup.addEventListener("keydown", (ev) => {
    const items = [...el.popup.querySelectorAll(".alternative:not(:disabled)")];
    const i = items.indexOf(document.activeElement);
    if (ev.key === "ArrowDown" && items.length) { items[(i + 1) % items.length].focus(); ev.preventDefault(); }
    else if (ev.key === "ArrowUp" && items.length) { items[(i - 1 + items.length) % items.length].focus(); ev.preventDefault(); }
    else if (ev.key === "Escape") {
      const span = popupPiece;
      hidePopup();
      if (span) focusPiece(span, true);
      ev.stopPropagation();
    }
  });
  el.popup.addEventListener("focusout", (ev) => {
    if (!el.popup.contains(ev.relatedTarget) && !pieceFrom(ev.relatedTarget)) {
      popupPinned = false;
      scheduleHide();
    }
  });

  document.addEventListener("pointerdown", (ev) => {  // a tap or click elsewhere closes it
    if (el.popup.hidden) return;
    const t = ev.target;
    if (t instanceof Node && (el.popup.contains(t) || pieceFrom(t))) return;
    hidePopup();
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    if (!el.popup.hidden) hidePopup();
    else if (run && run.running) stop();
  });
  window.addEventListener("resize", () => { if (popupPiece && !el.popup.hidden) positionPopup(popupPiece); });
  el.output.addEventListener("scroll", () => { if (popupPiece && !el.popup.hidden) positionPopup(popupPiece); });

  el.generate.addEventListener("click", () => generate());
  el.stop.addEventListener("click", stop);
  el.cont.addEventListener("click", () => {
    if (!run || run.running) return;
    el.prompt.value = run.prompt + generatedText();
    generate();
  });
  el.copy.addEventListener("click", async () => {
    if (!run) return;
    const text = (run.seq2seq ? "" : run.prompt) + generatedText();
    try {
      await navigator.clipboard.writeText(text);
      el.status.textContent = `${formatStatus(run)} · copied`;
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(el.output);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      el.status.textContent = `${formatStatus(run)} · selected: press Ctrl+C to copy`;
    }
  });
  el.reset.addEventListener("click", resetSettings);
  el.prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      generate();
    }
  });
  el.model.addEventListener("change", onModelChange);

  el.seed.value = load("seed", "");
  el.seed.addEventListener("input", () => save("seed", el.seed.value.trim()));
  el.apiKey.value = load("api_key", "");
  $("api_key_form").addEventListener("submit", (ev) => {  // Enter in the key field: use it now
    ev.preventDefault();
    loadModels();
  });
  let keyTimer = null;
  el.apiKey.addEventListener("input", () => {
    save("api_key", el.apiKey.value.trim());
    if (keyTimer !== null) window.clearTimeout(keyTimer);
    keyTimer = window.setTimeout(loadModels, 600);  // a new key may unlock the model list
  });

  for (const name of SLIDERS) bindSlider(name);
  updateButtons();
  loadModels();
})();
