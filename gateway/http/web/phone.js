// The web phone: USSD dialogs, an SMS inbox (long polling), a compose form, and the operator's
// view of the subscriber (balance, status, live events). Server data reaches the page only
// through textContent, never as HTML.
"use strict";

(() => {
  const NUMBER_KEY = "ussdsim.number";
  const RECENT_KEY = "ussdsim.recent-numbers";
  const TOKEN_KEY = "ussdsim.operator-token";
  const HANDSET_KEY = "ussdsim.handset-token";
  const INBOX_WAIT_S = 25;
  const MAX_EVENTS = 20;
  const MAX_MESSAGES = 200;

  const $ = (id) => document.getElementById(id);
  const el = {
    numberForm: $("number-form"), numberInput: $("number-input"), recent: $("recent-numbers"),
    screen: $("screen"), statusNumber: $("status-number"), smsBadge: $("sms-badge"),
    idle: $("idle-view"), clock: $("idle-clock"), ussdText: $("ussd-text"), ussdNote: $("ussd-note"),
    screenBody: $("screen-body"),
    dialForm: $("dial-form"), dialInput: $("dial-input"),
    replyForm: $("reply-form"), replyInput: $("reply-input"), replySend: $("reply-send"),
    callBtn: $("call-btn"), clearBtn: $("clear-btn"), endBtn: $("end-btn"), keypad: $("keypad"),
    inboxList: $("inbox-list"), inboxEmpty: $("inbox-empty"), inboxStatus: $("inbox-status"),
    composeForm: $("compose-form"), composeTo: $("compose-to"), composeText: $("compose-text"),
    composeCount: $("compose-count"), composeSend: $("compose-send"),
    composeResult: $("compose-result"),
    tokenForm: $("token-form"), tokenInput: $("token-input"), tokenForget: $("token-forget"),
    handsetForm: $("handset-form"), handsetInput: $("handset-input"),
    eventsStatus: $("events-status"), eventsList: $("events-list"), eventsEmpty: $("events-empty"),
    balance: $("balance"), subStatus: $("sub-status"), subTariff: $("sub-tariff"),
    subPoints: $("sub-points"), subLang: $("sub-lang"), subServices: $("sub-services"),
    subMessage: $("sub-message"),
  };

  const state = {
    number: "",
    token: "",
    handsetToken: "",
    mode: "idle", // idle | busy | open | ended | error
    sessionId: null,
    unread: 0,
    inboxAbort: null,
    eventsAbort: null,
    events: [],
    refreshTimer: null,
  };

  // --- storage (private windows may refuse it; the page still works without) ------------------

  function load(store, key) {
    try { return store.getItem(key) || ""; } catch { return ""; }
  }
  function save(store, key, value) {
    try {
      if (value) store.setItem(key, value); else store.removeItem(key);
    } catch { /* not persisted */ }
  }

  // --- HTTP ------------------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, body) {
      const err = body && typeof body === "object" ? body.error : null;
      super(err && err.message ? String(err.message) : `HTTP ${status}`);
      this.status = status;
      this.code = err && err.code ? String(err.code) : "http_error";
    }
  }

  async function api(method, path, body, { operator = false, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    // Handset calls carry the handset token when the server asks for one (the operator token
    // is accepted there too); operator calls carry the operator token.
    const bearer = operator ? state.token : state.handsetToken || state.token;
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const resp = await fetch(path, {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (resp.status === 401 && !operator) askHandsetToken();
    if (!resp.ok) throw new ApiFailure(resp.status, data);
    return data;
  }

  const enc = encodeURIComponent;

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); });
    });
  }

  // --- formatting ------------------------------------------------------------------------------

  function roubles(kop) {
    const n = Number(kop);
    if (!Number.isFinite(n)) return "—";
    const sign = n < 0 ? "−" : "";
    const abs = Math.abs(Math.trunc(n));
    const whole = String(Math.floor(abs / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
    return `${sign}${whole},${String(abs % 100).padStart(2, "0")} руб.`;
  }

  function timeOf(date) {
    if (Number.isNaN(date.getTime())) return "";
    const p = (v) => String(v).padStart(2, "0");
    return `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
  }

  function stampOf(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso || "");
    const p = (v) => String(v).padStart(2, "0");
    return `${p(date.getDate())}.${p(date.getMonth() + 1)}.${date.getFullYear()} ${timeOf(date)}`;
  }

  const STATUS_NAMES = { active: "активен", blocked: "заблокирован", suspended: "приостановлен" };

  // --- the screen ------------------------------------------------------------------------------

  function setMode(mode) {
    state.mode = mode;
    el.screen.dataset.state = mode;
    const session = mode === "open";
    el.replyForm.hidden = !session;
    el.dialForm.hidden = session;
    const busy = mode === "busy";
    for (const b of [el.callBtn, el.clearBtn, el.replySend]) b.disabled = busy;
    if (session) el.replyInput.focus({ preventScroll: true });
  }

  function showIdle() {
    state.sessionId = null;
    el.idle.hidden = false;
    el.ussdText.hidden = true;
    el.ussdNote.hidden = true;
    el.ussdText.textContent = "";
    el.dialInput.value = "";
    el.replyInput.value = "";
    setMode("idle");
  }

  function showText(text, note, mode) {
    el.idle.hidden = true;
    el.ussdText.hidden = false;
    el.ussdText.textContent = text;
    el.ussdNote.hidden = !note;
    el.ussdNote.textContent = note || "";
    el.screenBody.scrollTop = 0;
    setMode(mode);
  }

  function showReply(reply) {
    state.sessionId = reply.end ? null : String(reply.session_id);
    el.replyInput.value = "";
    if (reply.end) {
      showText(String(reply.text), "— сеанс завершён сетью —", "ended");
    } else {
      showText(String(reply.text), "", "open");
    }
  }

  function showError(err) {
    state.sessionId = null;
    const message = err instanceof ApiFailure ? err.message : "Нет связи с сетью";
    showText(message, err instanceof ApiFailure ? `ошибка: ${err.code}` : "", "error");
  }

  function requireNumber() {
    if (state.number) return true;
    showText("Сначала укажите свой номер вверху страницы.", "", "error");
    el.numberInput.focus();
    return false;
  }

  async function dial() {
    const code = el.dialInput.value.trim();
    if (!code || !requireNumber()) return;
    showText(`${code}\n\nВыполняется USSD-запрос…`, "", "busy");
    try {
      showReply(await api("POST", "/v1/ussd", { msisdn: state.number, code }));
    } catch (err) {
      showError(err);
    }
  }

  async function sendReply() {
    if (state.mode !== "open" || !state.sessionId) return;
    const input = el.replyInput.value;
    if (!input) { el.replyInput.focus(); return; }
    const sid = state.sessionId;
    const previous = el.ussdText.textContent;
    showText(previous, "отправка…", "busy");
    try {
      showReply(await api("POST", `/v1/ussd/${enc(sid)}`, { input }));
    } catch (err) {
      showError(err);
    }
  }

  async function cancelSession() {
    const sid = state.sessionId;
    showIdle();
    if (!sid) return;
    try {
      await api("DELETE", `/v1/ussd/${enc(sid)}`);
    } catch {
      // The network may have released it already; either way the phone is back to idle.
    }
  }

  function activeInput() {
    return state.mode === "open" ? el.replyInput : el.dialInput;
  }

  function pressKey(key) {
    if (state.mode === "busy") return;
    if (state.mode === "ended" || state.mode === "error") showIdle();
    const input = activeInput();
    if (input.value.length < input.maxLength) input.value += key;
  }

  function pressCall() {
    if (state.mode === "open") sendReply();
    else if (state.mode === "ended" || state.mode === "error") showIdle();
    else if (state.mode === "idle") dial();
  }

  function pressClear() {
    if (state.mode === "ended" || state.mode === "error") { showIdle(); return; }
    const input = activeInput();
    input.value = input.value.slice(0, -1);
  }

  function pressEnd() {
    if (state.mode === "open") cancelSession();
    else if (state.mode !== "busy") showIdle();
  }

  function tickClock() {
    el.clock.textContent = timeOf(new Date()).slice(0, 5);
  }

  // --- inbox (long polling) --------------------------------------------------------------------

  function setPill(pill, text, kind) {
    pill.textContent = text;
    pill.classList.toggle("live", kind === "live");
    pill.classList.toggle("bad", kind === "bad");
  }

  function updateBadge() {
    el.smsBadge.hidden = state.unread === 0;
    el.smsBadge.textContent = `✉ ${state.unread}`;
  }

  function addMessage(m, fresh) {
    const li = document.createElement("li");
    li.className = fresh ? "sms fresh" : "sms";
    li.dataset.id = String(m.id);
    const head = document.createElement("div");
    head.className = "sms-head";
    const from = document.createElement("span");
    from.className = "sms-from";
    from.textContent = String(m.from);
    const at = document.createElement("time");
    at.className = "sms-time";
    at.dateTime = String(m.at);
    at.textContent = stampOf(m.at);
    head.append(from, at);
    const text = document.createElement("div");
    text.className = "sms-text";
    text.textContent = String(m.text);
    li.append(head, text);
    el.inboxList.prepend(li);
    while (el.inboxList.children.length > MAX_MESSAGES) el.inboxList.lastElementChild.remove();
    el.inboxEmpty.hidden = true;
    if (fresh) { state.unread += 1; updateBadge(); }
  }

  async function pollInbox(number, signal) {
    let after = 0;
    let wait = 0; // the first call lists what is already there
    let failures = 0;
    while (!signal.aborted) {
      try {
        const path = `/v1/subscribers/${enc(number)}/inbox?after=${after}&wait=${wait}`;
        const data = await api("GET", path, undefined, { signal });
        const messages = Array.isArray(data && data.messages) ? data.messages : [];
        for (const m of messages) {
          if (Number(m.id) <= after) continue;
          addMessage(m, wait > 0);
          after = Number(m.id);
        }
        wait = INBOX_WAIT_S;
        failures = 0;
        setPill(el.inboxStatus, "онлайн", "live");
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        setPill(el.inboxStatus, err instanceof ApiFailure ? err.message : "нет связи", "bad");
        await sleep(Math.min(1000 * 2 ** failures, 15000), signal);
      }
    }
  }

  function restartInbox() {
    if (state.inboxAbort) state.inboxAbort.abort();
    el.inboxList.replaceChildren();
    el.inboxEmpty.hidden = false;
    state.unread = 0;
    updateBadge();
    if (!state.number) { setPill(el.inboxStatus, "—", ""); return; }
    state.inboxAbort = new AbortController();
    pollInbox(state.number, state.inboxAbort.signal);
  }

  async function sendSms(event) {
    event.preventDefault();
    if (!requireNumber()) return;
    const to = el.composeTo.value.trim();
    const text = el.composeText.value;
    if (!to || !text) return;
    el.composeSend.disabled = true;
    el.composeResult.className = "result";
    el.composeResult.textContent = "Отправка…";
    try {
      const ok = await api("POST", "/v1/sms", { from: state.number, to, text });
      const encoding = String(ok.encoding).toUpperCase().replace("UCS2", "UCS-2").replace("GSM7", "GSM-7");
      el.composeResult.className = "result ok";
      el.composeResult.textContent =
        `Отправлено: ${ok.segments} сегм., ${encoding} · sent, id ${ok.message_id}`;
      el.composeText.value = "";
      updateCount();
    } catch (err) {
      el.composeResult.className = "result bad";
      el.composeResult.textContent = err instanceof ApiFailure ? `Ошибка: ${err.message}` : "Нет связи";
    } finally {
      el.composeSend.disabled = false;
    }
  }

  function updateCount() {
    el.composeCount.textContent = `${el.composeText.value.length} симв.`;
  }

  // --- operator panel --------------------------------------------------------------------------

  function clearFacts(message) {
    for (const dd of [el.balance, el.subStatus, el.subTariff, el.subPoints, el.subLang, el.subServices]) {
      dd.textContent = "—";
      dd.className = dd === el.balance ? "balance" : "";
    }
    el.subMessage.className = "result";
    el.subMessage.textContent = message;
  }

  async function refreshSubscriber() {
    if (!state.token || !state.number) return;
    try {
      const sub = await api("GET", `/v1/subscribers/${enc(state.number)}`, undefined, { operator: true });
      el.balance.textContent = roubles(sub.balance_kop);
      el.balance.className = Number(sub.balance_kop) < 0 ? "balance negative" : "balance";
      const status = String(sub.status);
      el.subStatus.textContent = STATUS_NAMES[status] ? `${STATUS_NAMES[status]} (${status})` : status;
      el.subStatus.className = `status-${status.replace(/[^a-z]/g, "")}`;
      el.subTariff.textContent = String(sub.tariff);
      el.subPoints.textContent = String(sub.bonus_points);
      el.subLang.textContent = String(sub.lang);
      const services = Array.isArray(sub.services) ? sub.services : [];
      el.subServices.textContent = services.length ? services.join(", ") : "нет подключённых";
      el.subMessage.className = "result";
      el.subMessage.textContent = `${sub.msisdn}${sub.login_locked ? " · вход заблокирован" : ""}`;
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 404) {
        clearFacts("Номер ещё не зарегистрирован: он появится при первом звонке или SMS.");
      } else if (err instanceof ApiFailure && err.status === 401) {
        clearFacts("Токен не подошёл.");
        el.subMessage.className = "result bad";
      } else {
        el.subMessage.className = "result bad";
        el.subMessage.textContent = err instanceof ApiFailure ? err.message : "Нет связи";
      }
    }
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshSubscriber, 150);
  }

  const DETAIL_KEYS = [
    "code", "action", "outcome", "cause", "to", "sender", "purpose", "segments", "encoding",
    "amount_kop", "balance_kop", "end", "route",
  ];

  function describe(data) {
    if (!data || typeof data !== "object") return "";
    const parts = [];
    for (const key of DETAIL_KEYS) {
      const value = data[key];
      if (value === undefined || value === null || typeof value === "object") continue;
      if (key === "end") { parts.push(value ? "сеанс завершён" : "ждёт ответа"); continue; }
      parts.push(key.endsWith("_kop") ? `${key.slice(0, -4)} ${roubles(value)}` : `${key} ${value}`);
    }
    return parts.join(" · ");
  }

  function renderEvents() {
    const items = state.events.map((ev) => {
      const li = document.createElement("li");
      li.className = "event";
      li.dataset.kind = ev.kind;
      const at = document.createElement("span");
      at.className = "event-time";
      at.textContent = timeOf(new Date(Number(ev.at) * 1000));
      const kind = document.createElement("span");
      kind.className = `event-kind k-${ev.kind.split(".")[0].replace(/[^a-z]/g, "")}`;
      kind.textContent = ev.kind;
      const detail = document.createElement("span");
      detail.className = "event-detail";
      detail.textContent = describe(ev.data);
      li.append(at, kind, detail);
      return li;
    });
    el.eventsList.replaceChildren(...items);
    el.eventsEmpty.hidden = items.length > 0;
  }

  function onEvent(ev) {
    state.events.unshift(ev);
    state.events.length = Math.min(state.events.length, MAX_EVENTS);
    renderEvents();
    scheduleRefresh();
  }

  function parseSse(block) {
    let id = null;
    let kind = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    try {
      const parsed = JSON.parse(data.join("\n"));
      return { id, kind: String(parsed.kind || kind), at: parsed.at, data: parsed.data };
    } catch {
      return null;
    }
  }

  // EventSource cannot send an Authorization header, so the stream is read with fetch: the token
  // travels in a header, never in a URL.
  async function readSse(resp, each) {
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        const ev = parseSse(block);
        if (ev) each(ev);
      }
    }
  }

  // What the store already holds for the number (the newest page, `once=1`): the panel starts
  // with the last MAX_EVENTS of them, and the live stream resumes after the newest.
  async function storedEvents(number, signal) {
    const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
    const resp = await fetch(`/v1/events?once=1&msisdn=${enc(number)}`, { headers, signal, cache: "no-store" });
    if (!resp.ok || !resp.body) return { status: resp.status, events: [] };
    const events = [];
    await readSse(resp, (ev) => events.push(ev));
    return { status: resp.status, events };
  }

  function tokenRefused() {
    setPill(el.eventsStatus, "неверный токен", "bad");
    clearFacts("Токен не подошёл.");
    el.subMessage.className = "result bad";
  }

  async function streamEvents(number, signal) {
    let lastId = null;
    let failures = 0;
    try {
      const stored = await storedEvents(number, signal);
      if (stored.status === 401) return tokenRefused();
      state.events = stored.events.slice(-MAX_EVENTS).reverse();
      if (stored.events.length) lastId = stored.events[stored.events.length - 1].id;
      renderEvents();
    } catch {
      if (signal.aborted) return;
      // the live stream below still runs; the stored events are only missing from the panel
    }
    while (!signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const resp = await fetch(`/v1/events?msisdn=${enc(number)}`, { headers, signal, cache: "no-store" });
        if (resp.status === 401) return tokenRefused();
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        setPill(el.eventsStatus, "live", "live");
        failures = 0;
        await readSse(resp, (ev) => { lastId = ev.id || lastId; onEvent(ev); });
      } catch {
        if (signal.aborted) return;
      }
      failures += 1;
      setPill(el.eventsStatus, "переподключение…", "bad");
      await sleep(Math.min(1000 * 2 ** failures, 15000), signal);
    }
  }

  function restartOperator() {
    if (state.eventsAbort) state.eventsAbort.abort();
    state.events = [];
    renderEvents();
    if (!state.token) {
      setPill(el.eventsStatus, "нет токена", "");
      clearFacts("Введите токен оператора, чтобы видеть баланс и события.");
      return;
    }
    if (!state.number) {
      setPill(el.eventsStatus, "нет номера", "");
      clearFacts("Укажите номер телефона.");
      return;
    }
    setPill(el.eventsStatus, "подключение…", "");
    state.eventsAbort = new AbortController();
    streamEvents(state.number, state.eventsAbort.signal);
    refreshSubscriber();
  }

  // --- number and token ------------------------------------------------------------------------

  function cleanNumber(raw) {
    return String(raw).replace(/[\s\-()]/g, "");
  }

  function rememberRecent(number) {
    const recent = load(localStorage, RECENT_KEY).split(",").filter((n) => n && n !== number);
    recent.unshift(number);
    save(localStorage, RECENT_KEY, recent.slice(0, 6).join(","));
    renderRecent();
  }

  function renderRecent() {
    const options = load(localStorage, RECENT_KEY).split(",").filter(Boolean).map((n) => {
      const option = document.createElement("option");
      option.value = n;
      return option;
    });
    el.recent.replaceChildren(...options);
  }

  function useNumber(number) {
    if (state.sessionId) cancelSession();
    state.number = number;
    el.numberInput.value = number;
    el.statusNumber.textContent = number || "нет номера";
    save(localStorage, NUMBER_KEY, number);
    if (number) rememberRecent(number);
    showIdle();
    restartInbox();
    restartOperator();
  }

  // Asked once, when the server first refuses a handset call; kept for the browser session.
  function askHandsetToken() {
    if (!el.handsetForm.hidden) return;
    el.handsetForm.hidden = false;
    el.handsetInput.focus();
  }

  function useHandsetToken(token) {
    state.handsetToken = token;
    save(sessionStorage, HANDSET_KEY, token);
    el.handsetInput.value = "";
    el.handsetForm.hidden = true;
    restartInbox();
  }

  function useToken(token) {
    state.token = token;
    save(sessionStorage, TOKEN_KEY, token);
    el.tokenInput.value = "";
    el.tokenInput.placeholder = token ? "сохранён на сеанс" : "Bearer token";
    restartOperator();
  }

  // --- wiring ----------------------------------------------------------------------------------

  el.numberForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const number = cleanNumber(el.numberInput.value);
    if (!/^\+?\d{3,15}$/.test(number)) {
      el.numberInput.setCustomValidity("Номер: от 3 до 15 цифр, можно с +");
      el.numberInput.reportValidity();
      return;
    }
    useNumber(number);
  });
  el.numberInput.addEventListener("input", () => el.numberInput.setCustomValidity(""));

  el.dialForm.addEventListener("submit", (e) => { e.preventDefault(); dial(); });
  el.replyForm.addEventListener("submit", (e) => { e.preventDefault(); sendReply(); });
  el.keypad.addEventListener("click", (e) => {
    const key = e.target.closest("[data-key]");
    if (key) pressKey(key.dataset.key);
  });
  el.callBtn.addEventListener("click", pressCall);
  el.clearBtn.addEventListener("click", pressClear);
  el.endBtn.addEventListener("click", pressEnd);

  // A physical keyboard works when no field has the focus, as on a desktop softphone.
  document.addEventListener("keydown", (e) => {
    if (e.target !== document.body || e.ctrlKey || e.metaKey || e.altKey) return;
    if (/^[0-9*#]$/.test(e.key)) { pressKey(e.key); e.preventDefault(); }
    else if (e.key === "Enter") { pressCall(); e.preventDefault(); }
    else if (e.key === "Backspace") { pressClear(); e.preventDefault(); }
    else if (e.key === "Escape") { pressEnd(); e.preventDefault(); }
  });
  el.replyInput.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { e.preventDefault(); pressEnd(); }
  });

  el.composeForm.addEventListener("submit", sendSms);
  el.composeText.addEventListener("input", updateCount);
  el.composeText.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); el.composeForm.requestSubmit(); }
  });
  el.inboxList.addEventListener("click", () => { state.unread = 0; updateBadge(); });

  el.tokenForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = el.tokenInput.value.trim();
    if (token) useToken(token);
  });
  el.tokenForget.addEventListener("click", () => useToken(""));
  el.handsetForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = el.handsetInput.value.trim();
    if (token) useHandsetToken(token);
  });

  renderRecent();
  tickClock();
  setInterval(tickClock, 15000);
  state.token = load(sessionStorage, TOKEN_KEY);
  state.handsetToken = load(sessionStorage, HANDSET_KEY);
  if (state.token) el.tokenInput.placeholder = "сохранён на сеанс";
  useNumber(load(localStorage, NUMBER_KEY));
})();
