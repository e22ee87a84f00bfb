/**
 * The demo's task list (/tasks/): the list from GET /api/tasks, kept live by the topic
 * "tasks" of the socket /ws/live/ (docs/demo.md, "The task list").
 *
 * The page reads the list and the position it is current as of ({offset, epoch}), then
 * subscribes to "tasks" from that position: every change after it arrives as a publication
 * (created, updated, deleted), once and in order, also those made while the page loaded.
 * The client subscribes again from its last position after every reconnection; a reload
 * reads the list again. When the server cannot replay what was missed (its history was
 * trimmed or lost: `recovered: false`), the page reads the list again.
 *
 * Adding, ticking and deleting go through the HTTP API (POST /api/tasks, PATCH and DELETE
 * /api/tasks/<id>); the page changes its list only when the publication arrives, so every
 * open page, this one included, shows a change the same way, wherever it was made (another
 * page, the API, the admin, a shell).
 *
 * "Replay the history" streams the server's kept changes of "tasks" (the method `changes`, an
 * async generator on the server: docs/protocol.md section 14) into a list, one item at a time
 * as they arrive; pressing it again while it runs stops the stream (an AbortSignal: the
 * server's generator is closed).
 *
 * A logged-in user's page also subscribes to "user.<id>" (only that user may): the server
 * publishes a `notice` there when that user's session changes tasks through the API.
 *
 * Query parameters (milliseconds; the tests use short ones): heartbeat, heartbeatTimeout,
 * connectTimeout, reconnectDelay, reconnectMaxDelay.
 *
 * window.demoTasks exposes the client, the subscription and a log of publications and
 * refetches, for tests and for the console.
 */
(function () {
  "use strict";

  const { Client } = window.wsmanager;
  const $ = (id) => document.getElementById(id);
  const query = new URLSearchParams(location.search);

  const ui = {
    status: $("status"),
    notice: $("notice"),
    error: $("error"),
    form: $("add-form"),
    title: $("title"),
    list: $("tasks"),
    notices: $("notices"),
    noticesBox: $("notices-box"),
    historyButton: $("history-button"),
    historyStatus: $("history-status"),
    history: $("history"),
  };

  const tasks = new Map(); // id -> {id, title, done}
  // The position the list is current as of: a publication at or below it is in the list already.
  let baseline = null;
  const log = [];
  const demo = { client: null, subscription: null, notices: null, log, tasks: () => sorted() };
  window.demoTasks = demo;

  function clientOptions() {
    const names = {
      heartbeat: "heartbeatInterval",
      heartbeatTimeout: "heartbeatTimeout",
      connectTimeout: "connectTimeout",
      reconnectDelay: "reconnectDelay",
      reconnectMaxDelay: "reconnectMaxDelay",
    };
    const options = {};
    for (const [param, option] of Object.entries(names)) {
      const value = Number(query.get(param));
      if (query.has(param) && Number.isFinite(value) && value >= 0) options[option] = value;
    }
    return options;
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  /** One call of the demo's HTTP API; resolves with the JSON body (null for 204), throws its error. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = csrfToken();
    if (token && method !== "GET") headers["X-CSRFToken"] = token;
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Error(data && data.error ? data.error : `HTTP ${response.status}`);
    return data;
  }

  function sorted() {
    return Array.from(tasks.values()).sort((a, b) => a.id - b.id);
  }

  function render() {
    const items = sorted().map((task) => {
      const item = document.createElement("li");
      item.className = task.done ? "task done" : "task";
      item.dataset.testid = "task";
      item.dataset.id = String(task.id);
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = task.done;
      box.dataset.testid = "task-done";
      box.setAttribute("aria-label", `done: ${task.title}`);
      const title = document.createElement("span");
      title.className = "title";
      title.dataset.testid = "task-title";
      title.textContent = task.title;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.dataset.testid = "task-delete";
      remove.title = "Delete";
      remove.textContent = "\u00d7";
      item.append(box, title, remove);
      return item;
    });
    ui.list.replaceChildren(...items);
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  function showNotice(message) {
    ui.notice.textContent = message;
    ui.notice.hidden = !message;
  }

  /** Read the list and its position; the list replaces what the page had. */
  async function fetchList() {
    const data = await api("GET", "/api/tasks");
    tasks.clear();
    for (const task of data.tasks) tasks.set(task.id, task);
    baseline = data.topic;
    log.push({ type: "fetched", position: data.topic, count: data.tasks.length });
    render();
    return data.topic;
  }

  function apply(publication) {
    const { offset, epoch, event, data } = publication;
    log.push({ type: "publication", offset, epoch, event, id: data && data.id });
    if (baseline && baseline.epoch === epoch && offset <= baseline.offset) return; // read with the list
    if (!data || !Number.isInteger(data.id)) return;
    if (event === "deleted") tasks.delete(data.id);
    else if (event === "created" || event === "updated") tasks.set(data.id, data);
    render();
  }

  async function refetch(info) {
    log.push({ type: "unrecovered", reason: info.reason });
    showNotice("Some changes could not be replayed: the list was read again.");
    try {
      await fetchList();
    } catch (err) {
      showError(`could not read the tasks: ${err.message}`);
    }
  }

  function notice(publication) {
    const text = publication.data && publication.data.text;
    log.push({ type: "notice", offset: publication.offset, text });
    const item = document.createElement("li");
    item.dataset.testid = "user-notice";
    item.textContent = String(text);
    ui.notices.prepend(item);
    ui.noticesBox.hidden = false;
  }

  function setStatus(state) {
    ui.status.textContent = state === "open" ? "live" : state;
    const kind = state === "open" ? "connected" : state === "idle" || state === "closed" ? "disconnected" : state;
    ui.status.className = `status status-${kind}`;
  }

  async function act(method, path, body) {
    showError("");
    try {
      return await api(method, path, body);
    } catch (err) {
      showError(err.message);
      return null;
    }
  }

  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const title = ui.title.value.trim();
    if (!title) return;
    if ((await act("POST", "/api/tasks", { title })) !== null) ui.title.value = "";
  });

  ui.list.addEventListener("change", (event) => {
    const box = event.target;
    if (box.dataset.testid !== "task-done") return;
    const id = box.closest("li").dataset.id;
    box.checked = !box.checked; // shown as it is until the publication says otherwise
    act("PATCH", `/api/tasks/${id}`, { done: !box.checked });
  });

  ui.list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || button.dataset.testid !== "task-delete") return;
    act("DELETE", `/api/tasks/${button.closest("li").dataset.id}`);
  });

  let replaying = null; // the AbortController of the stream under way

  async function replayHistory() {
    if (replaying) {
      replaying.abort(new Error("stopped"));
      return;
    }
    replaying = new AbortController();
    ui.history.textContent = "";
    ui.historyButton.textContent = "Stop";
    ui.historyStatus.textContent = "replaying...";
    let count = 0;
    try {
      const changes = demo.client.streamWithOptions("changes", [200], { signal: replaying.signal });
      for await (const change of changes) {
        const item = document.createElement("li");
        item.dataset.testid = "history-item";
        item.textContent = `#${change.offset} ${change.event}: ${change.task.title}`;
        ui.history.append(item);
        count += 1;
      }
      ui.historyStatus.textContent = `${count} changes`;
    } catch (err) {
      ui.historyStatus.textContent = `${count} changes (${err.message})`;
    } finally {
      replaying = null;
      ui.historyButton.textContent = "Replay the history";
    }
  }

  ui.historyButton.addEventListener("click", replayHistory);

  async function start() {
    const client = new Client("/ws/live/", clientOptions());
    demo.client = client;
    client.addEventListener("statechange", (event) => setStatus(event.state));
    let since = null;
    try {
      since = await fetchList();
    } catch (err) {
      showError(`could not read the tasks: ${err.message}`);
      return;
    }
    client.connect();
    try {
      demo.subscription = await client.subscribe("tasks", apply, { since, onUnrecovered: refetch });
    } catch (err) {
      showError(`could not subscribe to the tasks: ${err.message}`);
    }
    const userId = document.body.dataset.userId;
    if (userId) {
      try {
        demo.notices = await client.subscribe(`user.${userId}`, notice);
      } catch (err) {
        showError(`could not subscribe to your notices: ${err.message}`);
      }
    }
  }

  start();
})();
