/**
 * The demo chat page: one wsmanager Client per joined room.
 *
 * Server methods used: send(text), whisper(to, text), set_name(name), who(), count().
 * Notifications served: message, joined, left, renamed, presence (a burst of joins and leaves).
 *
 * Query parameters: ?room=<room>&name=<name> prefill the form and join at once;
 * heartbeat, heartbeatTimeout, connectTimeout, reconnectDelay, reconnectMaxDelay
 * (milliseconds) tune the client (the tests use short ones); recover=0 turns
 * connection recovery off.
 *
 * Recovery: after a short drop the client resumes the same socket (same id, still
 * in the room); the page keeps its messages and member list, and the missed
 * notifications arrive as usual. When the resume fails (or the drop outlasted
 * the window) the page says so and refreshes its member list from the new
 * socket, as on a first connection.
 *
 * window.demoChat exposes the current client and an event log, for tests and
 * for poking around in the console.
 */
(function () {
  "use strict";

  const { Client, RpcError, ConnectionLostError, NotConnectedError } = window.wsmanager;
  const $ = (id) => document.getElementById(id);
  const query = new URLSearchParams(location.search);

  const ui = {
    joinForm: $("join-form"),
    name: $("name"),
    room: $("room"),
    status: $("status"),
    messages: $("messages"),
    error: $("error"),
    sendForm: $("send-form"),
    message: $("message"),
    send: $("send"),
    file: $("file"),
    online: $("online"),
    roomLabel: $("room-label"),
    whisperTarget: $("whisper-target"),
    whisperName: $("whisper-name"),
    whisperCancel: $("whisper-cancel"),
    notice: $("notice"),
  };

  const chat = {
    client: null,
    room: null,
    name: "",
    selfId: null,
    members: new Map(), // socket id -> name (or null)
    unlisted: 0, // members of a large room who() did not list (it lists at most 100)
    whisperTo: null,
    refreshing: null, // membership notifications seen while who() runs
    log: [], // {type, ...details} of every client event, for tests
  };
  window.demoChat = chat;

  function clientOptions() {
    const options = {};
    const numeric = {
      heartbeat: "heartbeatInterval",
      heartbeatTimeout: "heartbeatTimeout",
      connectTimeout: "connectTimeout",
      reconnectDelay: "reconnectDelay",
      reconnectMaxDelay: "reconnectMaxDelay",
    };
    for (const [param, option] of Object.entries(numeric)) {
      const value = Number(query.get(param));
      if (query.has(param) && Number.isFinite(value)) options[option] = value;
    }
    if (query.get("recover") === "0") options.recover = false;
    return options;
  }

  function socketUrl() {
    const path = `/ws/chat/${encodeURIComponent(chat.room)}/`;
    return chat.name ? `${path}?name=${encodeURIComponent(chat.name)}` : path;
  }

  function label(id, name) {
    return name || `anon-${id.slice(0, 6)}`;
  }

  // --- status and errors -----------------------------------------------------

  function setStatus(text) {
    ui.status.textContent = text;
    ui.status.className = `status status-${text}`;
  }

  /** The line under the status about the last reconnection (empty: hidden). */
  function setNotice(text, kind) {
    ui.notice.textContent = text;
    ui.notice.dataset.kind = kind || "";
    ui.notice.hidden = !text;
  }

  let errorTimer = null;
  function showError(err) {
    let text = String(err && err.message ? err.message : err);
    if (err instanceof RpcError) text = `${err.message} (code ${err.code})`;
    else if (err instanceof ConnectionLostError) text = "Not sent: the connection was lost. Try again.";
    else if (err instanceof NotConnectedError) text = "Not sent: not connected.";
    ui.error.textContent = text;
    ui.error.dataset.code = err && err.code !== undefined ? String(err.code) : "";
    ui.error.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => {
      ui.error.hidden = true;
    }, 6000);
  }

  // --- members ---------------------------------------------------------------

  function renderMembers() {
    ui.online.replaceChildren();
    for (const [id, name] of chat.members) {
      const li = document.createElement("li");
      li.dataset.socketId = id;
      li.textContent = label(id, name);
      li.title = id;
      if (id === chat.selfId) {
        li.classList.add("self");
        li.append(
          " ",
          Object.assign(document.createElement("span"), { className: "muted", textContent: "(you)" }),
        );
      } else {
        li.tabIndex = 0;
        li.setAttribute("role", "button");
      }
      if (id === chat.whisperTo) li.classList.add("selected");
      ui.online.append(li);
    }
    if (chat.unlisted > 0) {
      const more = Object.assign(document.createElement("li"), { className: "muted" });
      more.textContent = `and ${chat.unlisted} more`;
      ui.online.append(more);
    }
    if (chat.whisperTo && !chat.members.has(chat.whisperTo)) selectWhisper(null);
  }

  function applyMembership(kind, params) {
    if (kind === "left") chat.members.delete(params.id);
    else chat.members.set(params.id, params.name);
  }

  function onMembership(kind) {
    return (params) => {
      if (chat.refreshing) chat.refreshing.push([kind, params]);
      applyMembership(kind, params);
      renderMembers();
    };
  }

  async function refreshMembers(client) {
    chat.refreshing = [];
    try {
      const members = await client.invoke("who");
      // who() lists at most 100 members: a larger room says how many it has in all.
      const count = members.length >= 100 ? await client.invoke("count") : members.length;
      if (client !== chat.client) return;
      const seen = chat.refreshing || [];
      chat.members = new Map(members.map((m) => [m.id, m.name]));
      // In a room larger than the list, this page may not be among those listed: show it anyway.
      if (chat.selfId && !chat.members.has(chat.selfId)) chat.members.set(chat.selfId, chat.name || null);
      chat.unlisted = Math.max(0, count - chat.members.size);
      for (const [kind, params] of seen) applyMembership(kind, params);
      renderMembers();
    } catch (err) {
      if (client === chat.client) showError(err);
    } finally {
      chat.refreshing = null;
    }
  }

  function selectWhisper(id) {
    chat.whisperTo = id && id !== chat.selfId ? id : null;
    ui.whisperTarget.hidden = !chat.whisperTo;
    ui.whisperName.textContent = chat.whisperTo
      ? label(chat.whisperTo, chat.members.get(chat.whisperTo))
      : "";
    ui.message.placeholder = chat.whisperTo ? "Whisper…" : `Message #${chat.room}`;
    for (const li of ui.online.children)
      li.classList.toggle("selected", li.dataset.socketId === chat.whisperTo);
    ui.message.focus();
  }

  // --- messages --------------------------------------------------------------

  function appendMessage({ from, name, text, private: isPrivate, to, file }) {
    const li = document.createElement("li");
    li.className = "message";
    if (from && from === chat.selfId) li.classList.add("own");
    if (from === null) li.classList.add("system");
    if (isPrivate) li.classList.add("private");
    li.dataset.from = from || "";
    const who = document.createElement("span");
    who.className = "from";
    if (from === null) who.textContent = "server";
    else if (to) who.textContent = `you → ${label(to, chat.members.get(to))}`;
    else who.textContent = from === chat.selfId ? "you" : label(from, name);
    if (isPrivate) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "whisper";
      who.append(" ", tag);
    }
    if (file) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.dataset.testid = "shared-file";
      tag.textContent = `file ${file}`;
      who.append(" ", tag);
    }
    const body = document.createElement(file ? "pre" : "span");
    body.className = "text";
    body.textContent = text;
    li.append(who, body);
    ui.messages.append(li);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  async function sendMessage() {
    const client = chat.client;
    const text = ui.message.value;
    if (!client) return;
    const to = chat.whisperTo;
    try {
      if (to) {
        await client.invoke("whisper", to, text);
        appendMessage({ from: chat.selfId, name: chat.name, text, private: true, to });
      } else {
        await client.invoke("send", text);
      }
      if (ui.message.value === text) ui.message.value = "";
    } catch (err) {
      showError(err);
    }
  }

  /** The file's text in slices of 16K characters, each sent as the server grants credit (an
   * upload: docs/protocol.md §14). Sliced as text, not bytes, so no character is cut in two. */
  async function* slices(file, size = 16 * 1024) {
    const text = await file.text();
    for (let at = 0; at < text.length; at += size) yield text.slice(at, at + size);
  }

  async function shareFile() {
    const client = chat.client;
    const file = ui.file.files[0];
    ui.file.value = "";
    if (!client || !file) return;
    try {
      await client.upload("share", slices(file), [file.name]);
    } catch (err) {
      showError(err);
    }
  }

  // --- joining ---------------------------------------------------------------

  function record(type, event, fields) {
    const entry = { type, time: Date.now() };
    for (const field of fields) entry[field] = event[field];
    chat.log.push(entry);
  }

  function join(room, name) {
    const previous = chat.client;
    chat.client = null; // its events from now on are ignored
    if (previous) previous.close(1000, "left the room");
    chat.room = room;
    chat.name = name;
    chat.selfId = null;
    chat.members = new Map();
    chat.whisperTo = null;
    ui.messages.replaceChildren();
    ui.roomLabel.textContent = `#${room}`;
    setNotice("");
    renderMembers();
    selectWhisper(null);

    // A function URL: reconnections use the current name (set_name may have changed it).
    const client = new Client(socketUrl, clientOptions());
    chat.client = client;
    client.on("message", appendMessage);
    client.on("joined", onMembership("joined"));
    client.on("left", onMembership("left"));
    client.on("renamed", onMembership("renamed"));
    // A burst of arrivals and departures within 50 ms comes as one notification.
    client.on("presence", (params) => {
      for (const entry of params.joined) onMembership("joined")(entry);
      for (const id of params.left) onMembership("left")({ id });
    });

    client.addEventListener("statechange", (e) => {
      record("statechange", e, ["state", "previous"]);
      if (client !== chat.client) return;
      if (e.state === "reconnecting") setStatus("reconnecting");
      else if (e.state === "connecting")
        setStatus(e.previous === "reconnecting" ? "reconnecting" : "connecting");
      else if (e.state === "closed") setStatus("disconnected");
    });
    client.addEventListener("connected", (e) => {
      record("connected", e, ["id", "reconnect", "recovered"]);
      if (client !== chat.client) return;
      chat.selfId = e.id;
      setStatus("connected");
      // A resumed socket is still in the room and gets what it missed: the page is up to date.
      if (e.recovered) return;
      // The server put the new socket in the room from its URL: show who is there now.
      refreshMembers(client);
    });
    client.addEventListener("reconnected", (e) => {
      record("reconnected", e, ["id", "previousId", "recovered"]);
      // Not resumed (recovery off, the window over, or it failed: "recoveryfailed" follows).
      if (client === chat.client && !e.recovered)
        setNotice("Reconnected as a new session: messages sent meanwhile are missing.", "fresh");
    });
    client.addEventListener("recovered", (e) => {
      record("recovered", e, ["id", "replayed"]);
      if (client !== chat.client) return;
      const missed = e.replayed === 1 ? "1 missed update" : `${e.replayed} missed updates`;
      setNotice(`Reconnected: session recovered, ${missed} replayed.`, "recovered");
    });
    client.addEventListener("recoveryfailed", (e) => {
      record("recoveryfailed", e, ["reason", "previousId", "id"]);
      if (client !== chat.client) return;
      // A fresh socket: the "connected" listener re-read the members; the server rejoined the room.
      setNotice(
        `Reconnected as a new session (recovery failed: ${e.reason}). Messages sent meanwhile are missing.`,
        "failed",
      );
    });
    client.addEventListener("reconnecting", (e) =>
      record("reconnecting", e, ["attempt", "delay", "code", "reason"]),
    );
    client.addEventListener("close", (e) => {
      record("close", e, ["code", "reason", "wasClean", "willReconnect"]);
      if (client === chat.client && !e.willReconnect) {
        showError(
          `Disconnected (close ${e.code}${e.reason ? `: ${e.reason}` : ""}). Press Join to connect again.`,
        );
      }
    });

    ui.message.disabled = false;
    ui.send.disabled = false;
    ui.file.disabled = false;
    client.connect();
  }

  // --- wiring ----------------------------------------------------------------

  ui.file.addEventListener("change", shareFile);

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = ui.room.value.trim();
    const name = ui.name.value.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(room)) {
      showError("A room name has 1 to 64 letters, digits, - or _.");
      return;
    }
    if (chat.client && chat.client.state !== "closed" && room === chat.room) {
      if (name && name !== chat.name) {
        chat.client.invoke("set_name", name).then((newName) => {
          chat.name = newName;
          chat.members.set(chat.selfId, newName);
          renderMembers();
        }, showError);
      }
      return;
    }
    join(room, name);
  });

  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });

  ui.online.addEventListener("click", (event) => {
    const li = event.target.closest("li[data-socket-id]");
    if (!li || li.dataset.socketId === chat.selfId) return;
    selectWhisper(li.dataset.socketId === chat.whisperTo ? null : li.dataset.socketId);
  });
  ui.online.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      event.target.click();
    }
  });
  ui.whisperCancel.addEventListener("click", () => selectWhisper(null));

  chat.join = join;
  if (query.get("name")) ui.name.value = query.get("name");
  if (query.get("room")) {
    ui.room.value = query.get("room");
    join(ui.room.value, ui.name.value.trim());
  }
})();
