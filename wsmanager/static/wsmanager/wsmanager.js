/**
 * wsmanager browser client: JSON-RPC 2.0 over one WebSocket, in both directions.
 *
 * One dependency-free file. Loaded as a classic `<script>` it defines the
 * global `wsmanager`; `wsmanager.mjs` beside it re-exports the same objects
 * for `import { Client } from ".../wsmanager.mjs"`. Loading both gives one
 * copy (the second load reuses the first), so `instanceof` checks agree.
 * The npm package `wsmanager-client` is this file, unchanged, inside an ES
 * module that exports the library and sets no global (clients/js/build.mjs).
 *
 * Errors (all extend WsManagerError, itself an Error):
 *
 *     WsManagerError
 *     ├── RpcError              the peer answered with a JSON-RPC error (code, message, data)
 *     ├── ConnectionLostError   the connection closed before the answer arrived
 *     ├── NotConnectedError     no open connection and the message could not be queued
 *     └── InvokeTimeoutError    no answer within the call's timeout
 *
 * Topics (docs/client.md, "Topics"): subscribe() returns a Promise of a
 * Subscription. A refusal rejects it with an RpcError (-32010 unknown topic,
 * -32011 not authorized, -32012 too many subscriptions, -32602 bad params).
 *
 * Guarantees and non-guarantees:
 *
 * - Every invoke() promise settles exactly once: with the result, or with one
 *   of the errors above. Nothing is retried for you: a call that was sent
 *   when the connection dropped rejects with ConnectionLostError, because the
 *   server may or may not have run it.
 * - Calls and notifications made while there is no open connection are queued
 *   (up to `queueSize`) and sent in order after the next open, unless
 *   `failFast` is set (nothing is queued) or `queueCalls` is false (calls are
 *   not queued, notifications are). There is no backpressure beyond that bound.
 * - Handlers registered with on() are only reached by the server's calls and
 *   notifications; the built-ins `rpc.connected` and `rpc.ping` cannot be
 *   overridden.
 * - Recovery (when the server offers it and `recover` is on): after an abrupt
 *   drop (1001, 1006, 1011, 1012) the next attempts within the server's window
 *   ask to resume the session (`wsm_resume`, `wsm_offset`); the server then
 *   keeps the socket id and replays what was missed. A notification whose
 *   `offset` was already seen is dropped, so each reaches on() at most once.
 * - Topics: each subscription is sent again after every new connection, with
 *   the position of the last publication delivered (kept in sessionStorage by
 *   default, so a reloaded page asks for what it missed). Publications reach
 *   the callback once and in offset order within an epoch; an offset at or
 *   below the position is dropped (counted in `duplicates`). When the server
 *   cannot replay what was missed (`recovered: false`, or a new epoch), the
 *   subscription says "unrecovered": the application refetches its state.
 * - A close on purpose (close(), and the page going away: `pagehide`) says
 *   `rpc.close` before its close frame, so that every server releases the
 *   socket at once rather than keeping it for recovery. A hidden page keeps
 *   its socket.
 *
 * See docs/client.md for the full reference.
 */
(function (root, moduleHome) {
  "use strict";

  // Where the library goes: onto the global object (`wsmanager`) for a classic script; into the
  // npm package's own object for its ES module, which sets no global.
  const home = moduleHome || root;
  if (home.wsmanager && home.wsmanager.Client) {
    return; // Loaded twice (classic script and module): keep the first copy.
  }

  /** Library version. */
  const VERSION = "0.1.0";

  /** JSON-RPC error codes used by wsmanager (docs/protocol.md). */
  const ErrorCodes = Object.freeze({
    PARSE_ERROR: -32700,
    INVALID_REQUEST: -32600,
    METHOD_NOT_FOUND: -32601,
    INVALID_PARAMS: -32602,
    INTERNAL_ERROR: -32603,
    SERVER_BUSY: -32000,
    BINARY_NOT_SUPPORTED: -32001,
    RATE_LIMITED: -32002,
    FORBIDDEN: -32003,
    MESSAGE_TOO_LARGE: -32004,
    UNAVAILABLE: -32005,
    UNKNOWN_TOPIC: -32010,
    TOPIC_NOT_AUTHORIZED: -32011,
    TOO_MANY_SUBSCRIPTIONS: -32012,
    TOO_MANY_STREAMS: -32020,
    STREAM_CANCELLED: -32021,
  });

  /** The credit a stream starts with on the server (docs/protocol.md, section 14). */
  const STREAM_CREDIT = 16;

  /** WebSocket close codes with a meaning for reconnection. */
  const CloseCodes = Object.freeze({
    NORMAL: 1000,
    GOING_AWAY: 1001,
    UNSUPPORTED_DATA: 1003,
    ABNORMAL: 1006,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    RESUMED_ELSEWHERE: 4409,
  });

  // Losses after which the client asks to resume its session (docs/protocol.md, recovery).
  const RESUMABLE_CODES = [1001, 1006, 1011, 1012];
  // How many notification offsets are remembered to drop replayed duplicates.
  const SEEN_LIMIT = 10000;
  const OFFSET_PATTERN = /^(\d+)-(\d+)$/;

  /** The client's lifecycle states, in the order a connection normally goes through them. */
  const States = Object.freeze({
    IDLE: "idle",
    CONNECTING: "connecting",
    OPEN: "open",
    RECONNECTING: "reconnecting",
    CLOSED: "closed",
  });

  // Allowed transitions; anything else is a bug in this file and throws.
  const TRANSITIONS = {
    idle: ["connecting", "closed"],
    connecting: ["open", "reconnecting", "closed"],
    open: ["reconnecting", "closed"],
    reconnecting: ["connecting", "closed"],
    closed: ["connecting", "closed"],
  };

  const DEFAULTS = Object.freeze({
    protocols: undefined,
    encoding: "json",
    timeout: 30000,
    connectTimeout: 10000,
    reconnect: true,
    reconnectDelay: 1000,
    reconnectMaxDelay: 30000,
    reconnectFactor: 2,
    reconnectJitter: 0.5,
    maxReconnectAttempts: Infinity,
    shouldReconnect: null,
    heartbeatInterval: 10000,
    heartbeatTimeout: 5000,
    queueSize: 100,
    queueCalls: true,
    failFast: false,
    recover: true,
    positionStorage: "session",
    WebSocket: null,
  });

  // The options of subscribe().
  const SUBSCRIBE_OPTIONS = ["since", "onUnrecovered", "onError", "persist"];
  // Where a topic's position is kept in the position storage: prefix, socket host and path, topic.
  const POSITION_KEY = "wsmanager.position";

  const OPEN = 1; // WebSocket.OPEN, without relying on the global.

  // --- errors ---------------------------------------------------------------

  /** Root of every error this library raises or rejects with. */
  class WsManagerError extends Error {
    /** @param {string} message What went wrong. */
    constructor(message) {
      super(message);
      this.name = "WsManagerError";
    }
  }

  /**
   * The peer answered a call with a JSON-RPC error object.
   * Also throw it from an on() handler to answer the server with that error.
   */
  class RpcError extends WsManagerError {
    /**
     * @param {number} code JSON-RPC error code, e.g. -32602.
     * @param {string} message Short description from the peer.
     * @param {*} [data] Optional extra information from the peer.
     */
    constructor(code, message, data) {
      super(message);
      this.name = "RpcError";
      /** The JSON-RPC error code (see ErrorCodes). */
      this.code = code;
      /** The error's `data` member, or undefined when absent. */
      this.data = data;
    }

    /** `RpcError -32601: Method not found`. */
    toString() {
      return `${this.name} ${this.code}: ${this.message}`;
    }
  }

  /** The connection closed while a call was waiting for its answer; the server may or may not have run it. */
  class ConnectionLostError extends WsManagerError {
    /**
     * @param {string} method The method that was called.
     * @param {number} closeCode The close code that ended the connection.
     * @param {string} closeReason The close reason.
     */
    constructor(method, closeCode, closeReason) {
      super(
        `connection lost before ${method} was answered (close ${closeCode}${closeReason ? ` ${closeReason}` : ""})`,
      );
      this.name = "ConnectionLostError";
      /** The method that was called. */
      this.method = method;
      /** The close code that ended the connection (1006 when it was dropped locally). */
      this.closeCode = closeCode;
      /** The close reason. */
      this.closeReason = closeReason;
    }
  }

  /**
   * A call or notification could not be sent nor queued: the client is closed, `failFast` is set,
   * the queue is full, or calls are not queued (`queueCalls: false`, or `queue: false` for the call).
   */
  class NotConnectedError extends WsManagerError {
    /**
     * @param {string} method The method that was called.
     * @param {"closed"|"fail-fast"|"queue-full"|"not-queued"} reason Why it was not queued.
     */
    constructor(method, reason) {
      const why = {
        closed: "the client is closed",
        "fail-fast": "failFast is set",
        "queue-full": "the queue is full",
        "not-queued": "calls are not queued",
      }[reason];
      super(`not connected: ${method} was not sent because ${why}`);
      this.name = "NotConnectedError";
      /** The method that was called. */
      this.method = method;
      /** Why the message was not queued: "closed", "fail-fast", "queue-full" or "not-queued". */
      this.reason = reason;
    }
  }

  /** No answer arrived within the call's timeout. A late answer is ignored. */
  class InvokeTimeoutError extends WsManagerError {
    /**
     * @param {string} method The method that was called.
     * @param {number} timeout The timeout in milliseconds.
     */
    constructor(method, timeout) {
      super(`${method} was not answered within ${timeout} ms`);
      this.name = "InvokeTimeoutError";
      /** The method that was called. */
      this.method = method;
      /** The timeout in milliseconds. */
      this.timeout = timeout;
    }
  }

  // --- helpers --------------------------------------------------------------

  /** Whether the last argument of stream() is its options: `{signal?, window?}` and nothing else. */
  function isStreamOptions(value) {
    if (!isPlainObject(value)) return false;
    const keys = Object.keys(value);
    if (keys.length === 0 || !keys.every((key) => key === "signal" || key === "window")) return false;
    return value.signal === undefined || (typeof AbortSignal !== "undefined" && value.signal instanceof AbortSignal);
  }

  function isPlainObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function isValidId(value) {
    return (
      value === null || typeof value === "string" || (typeof value === "number" && Number.isFinite(value))
    );
  }

  /** A relative URL ("/ws/chat/x/") becomes ws(s)://<this page's host>/ws/chat/x/. */
  function resolveUrl(url) {
    if (/^wss?:\/\//i.test(url)) {
      return url;
    }
    const base = root.location && root.location.href;
    const absolute = new URL(url, base);
    if (absolute.protocol === "http:") absolute.protocol = "ws:";
    else if (absolute.protocol === "https:") absolute.protocol = "wss:";
    return absolute.href;
  }

  /** "<ms>-<seq>" as [ms, seq], or null when it is not an offset. */
  function parseOffset(value) {
    const match = typeof value === "string" ? OFFSET_PATTERN.exec(value) : null;
    return match ? [Number(match[1]), Number(match[2])] : null;
  }

  /** Whether offset `a` comes after `b` (both parsed; null comes before everything). */
  function isLater(a, b) {
    return b === null || a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
  }

  /**
   * `url` without wsm_resume and wsm_offset in its query, then with `params` (may be empty)
   * added; the application's own query parameters are kept as they were written.
   */
  function withResumeParams(url, params) {
    const hashAt = url.indexOf("#");
    const hash = hashAt === -1 ? "" : url.slice(hashAt);
    const rest = hashAt === -1 ? url : url.slice(0, hashAt);
    const queryAt = rest.indexOf("?");
    const parts = queryAt === -1 ? [] : rest.slice(queryAt + 1).split("&");
    const kept = parts.filter((part) => part !== "" && !/^wsm_(resume|offset)(=|$)/.test(part));
    for (const [key, value] of Object.entries(params)) kept.push(`${key}=${encodeURIComponent(value)}`);
    const base = queryAt === -1 ? rest : rest.slice(0, queryAt);
    return `${base}${kept.length > 0 ? `?${kept.join("&")}` : ""}${hash}`;
  }

  function errorObject(code, message, data) {
    const error = { code, message };
    if (data !== undefined) error.data = data;
    return error;
  }

  /** The error object answering a call whose handler threw `err`. */
  function errorFromThrown(err) {
    if (err && Number.isInteger(err.code)) {
      return errorObject(
        err.code,
        typeof err.message === "string" ? err.message : String(err.message),
        err.data,
      );
    }
    const detail = err && typeof err.message === "string" ? err.message : String(err);
    return errorObject(ErrorCodes.INTERNAL_ERROR, "Internal error", detail);
  }

  /** JSON text of one response; a result that cannot be encoded becomes an Internal error. */
  function encodeResponse(response) {
    try {
      return JSON.stringify(response);
    } catch (err) {
      return JSON.stringify({
        jsonrpc: "2.0",
        error: errorObject(ErrorCodes.INTERNAL_ERROR, "Internal error", `result is not JSON: ${err.message}`),
        id: response.id,
      });
    }
  }

  /** MessagePack of one response; a result that cannot be encoded becomes an Internal error. */
  function packResponse(response) {
    try {
      return packMessage(response);
    } catch (err) {
      const detail = `result is not MessagePack: ${err.message}`;
      const error = errorObject(ErrorCodes.INTERNAL_ERROR, "Internal error", detail);
      return packMessage({ jsonrpc: "2.0", error, id: response.id });
    }
  }

  /** Packed responses as one MessagePack array (the batch answer). */
  function joinPacked(packed) {
    const total = packed.reduce((sum, p) => sum + p.length, 0);
    const n = packed.length;
    const head = n < 16 ? [0x90 | n] : [0xdc, n >> 8, n & 0xff]; // a batch is far below 65,536
    const out = new Uint8Array(head.length + total);
    out.set(head, 0);
    let at = head.length;
    for (const p of packed) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * Tell the server that this close is on purpose (docs/protocol.md, rpc.close): sent on an open
   * socket just before its close frame, with the code when it is one a browser may send.
   */
  function sayClose(ws, code) {
    if (ws.readyState !== OPEN) return;
    const chosen = code === CloseCodes.NORMAL || (Number.isInteger(code) && code >= 3000 && code <= 4999);
    const message = { jsonrpc: "2.0", method: "rpc.close" };
    if (chosen && code !== CloseCodes.NORMAL) message.params = { code };
    try {
      ws.send(ws.protocol === MSGPACK_SUBPROTOCOL ? packMessage(message) : JSON.stringify(message));
    } catch (err) {
      // The socket is closing anyway; the close frame follows.
    }
  }

  function reportError(err) {
    if (typeof root.reportError === "function") root.reportError(err);
    else if (root.console) root.console.error(err);
  }

  // --- MessagePack (docs/protocol.md, section 15) ------------------------------
  // The encoding a client chooses with `encoding: "msgpack"`: the same messages as binary
  // frames, Uint8Array values as MessagePack `bin`. Written for this protocol's data only:
  // maps with string keys, arrays, strings, numbers, booleans, null and bytes.

  const MSGPACK_SUBPROTOCOL = "wsmanager.v1.msgpack";
  const MSGPACK_MAX_DEPTH = 64; // as the server's decoder (docs/protocol.md, section 7)

  /** `value` as MessagePack bytes. Throws TypeError for what the protocol cannot carry. */
  function packMessage(value) {
    const out = new Packer();
    out.value(value, 0);
    return out.bytes();
  }

  class Packer {
    constructor() {
      this.buf = new Uint8Array(256);
      this.view = new DataView(this.buf.buffer);
      this.len = 0;
      this.text = new TextEncoder();
    }

    room(n) {
      if (this.len + n <= this.buf.length) return;
      let size = this.buf.length * 2;
      while (size < this.len + n) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }

    byte(b) {
      this.room(1);
      this.buf[this.len++] = b;
    }

    /** A type byte, then `n` as an unsigned integer of `size` bytes (1, 2 or 4). */
    head(type, n, size) {
      this.room(1 + size);
      this.buf[this.len++] = type;
      if (size === 1) this.view.setUint8(this.len, n);
      else if (size === 2) this.view.setUint16(this.len, n);
      else this.view.setUint32(this.len, n);
      this.len += size;
    }

    /** A header of a family with a fix form (`fix` below `fixLimit`) and 8/16/32-bit forms. */
    sized(n, fix, fixLimit, t8, t16, t32) {
      if (n < fixLimit) this.byte(fix | n);
      else if (t8 !== 0 && n < 0x100) this.head(t8, n, 1);
      else if (n < 0x10000) this.head(t16, n, 2);
      else this.head(t32, n, 4);
    }

    raw(bytes) {
      this.room(bytes.length);
      this.buf.set(bytes, this.len);
      this.len += bytes.length;
    }

    /**
     * A number as MessagePack: what JSON.stringify sends, typed. Safe integers as the
     * smallest int or uint form (64-bit ones included, so Date.now() arrives as an int);
     * other finite numbers as float64; NaN and infinities as nil (JSON.stringify's null).
     */
    number(n) {
      if (!Number.isFinite(n)) this.byte(0xc0);
      else if (!Number.isSafeInteger(n)) this.float(n);
      else if (n >= 0) {
        if (n < 0x80) this.byte(n);
        else if (n < 0x100) this.head(0xcc, n, 1);
        else if (n < 0x10000) this.head(0xcd, n, 2);
        else if (n <= 0xffffffff) this.head(0xce, n, 4);
        else this.wide(0xcf, n);
      } else if (n >= -32) this.byte(n & 0xff);
      else if (n >= -0x80) this.signed(0xd0, n, 1);
      else if (n >= -0x8000) this.signed(0xd1, n, 2);
      else if (n >= -0x80000000) this.signed(0xd2, n, 4);
      else this.wide(0xd3, n);
    }

    /** A type byte, then `n` as a signed integer of `size` bytes (1, 2 or 4). */
    signed(type, n, size) {
      this.room(1 + size);
      this.buf[this.len++] = type;
      if (size === 1) this.view.setInt8(this.len, n);
      else if (size === 2) this.view.setInt16(this.len, n);
      else this.view.setInt32(this.len, n);
      this.len += size;
    }

    /** A type byte (0xcf uint64, 0xd3 int64), then the safe integer `n` in 8 bytes. */
    wide(type, n) {
      this.room(9);
      this.buf[this.len++] = type;
      if (type === 0xcf) this.view.setBigUint64(this.len, BigInt(n));
      else this.view.setBigInt64(this.len, BigInt(n));
      this.len += 8;
    }

    float(n) {
      this.room(9);
      this.buf[this.len++] = 0xcb;
      this.view.setFloat64(this.len, n);
      this.len += 8;
    }

    value(v, depth) {
      if (depth > MSGPACK_MAX_DEPTH * 8) throw new TypeError("value nested too deep (or a cycle)");
      if (v === null || v === undefined) this.byte(0xc0);
      else if (v === false) this.byte(0xc2);
      else if (v === true) this.byte(0xc3);
      else if (typeof v === "number") this.number(v);
      else if (typeof v === "string") {
        const bytes = this.text.encode(v);
        this.sized(bytes.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
        this.raw(bytes);
      } else if (v instanceof Uint8Array) {
        this.sized(v.length, 0xc4, 0, 0xc4, 0xc5, 0xc6);
        this.raw(v);
      } else if (v instanceof ArrayBuffer || v instanceof DataView) {
        // Bytes as bin (never as an empty map, as JSON.stringify would make them).
        const { buffer, byteOffset, byteLength } = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
        this.value(new Uint8Array(buffer, byteOffset, byteLength), depth);
      } else if (ArrayBuffer.isView(v)) {
        throw new TypeError("only a Uint8Array, a DataView or an ArrayBuffer packs as bytes");
      } else if (Array.isArray(v)) {
        this.sized(v.length, 0x90, 16, 0, 0xdc, 0xdd);
        for (const item of v) this.value(item === undefined ? null : item, depth + 1);
      } else if (typeof v === "object" && typeof v.toJSON !== "function") {
        const keys = Object.keys(v).filter((k) => v[k] !== undefined && typeof v[k] !== "function");
        this.sized(keys.length, 0x80, 16, 0, 0xde, 0xdf);
        for (const key of keys) {
          this.value(key, depth + 1);
          this.value(v[key], depth + 1);
        }
      } else if (typeof v === "object") this.value(v.toJSON(), depth);
      else throw new TypeError(`cannot encode a ${typeof v} as MessagePack`);
    }

    bytes() {
      return this.buf.slice(0, this.len);
    }
  }

  /**
   * The value of one MessagePack frame (an ArrayBuffer or a Uint8Array). Throws an Error for
   * anything malformed, truncated, nested deeper than 64, with extension types, or with map
   * keys that are not strings. Integers beyond 2^53 lose precision (they become Numbers).
   */
  function unpackMessage(data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const reader = new Unpacker(bytes);
    const value = reader.value(0);
    if (reader.pos !== bytes.length) throw new Error("extra data after the message");
    return value;
  }

  class Unpacker {
    constructor(bytes) {
      this.bytes = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.pos = 0;
      this.text = new TextDecoder("utf-8", { fatal: true });
    }

    take(n) {
      if (this.pos + n > this.bytes.length) throw new Error("truncated MessagePack");
      const at = this.pos;
      this.pos += n;
      return at;
    }

    uint(size) {
      const at = this.take(size);
      if (size === 1) return this.view.getUint8(at);
      if (size === 2) return this.view.getUint16(at);
      if (size === 4) return this.view.getUint32(at);
      return Number(this.view.getBigUint64(at));
    }

    int(size) {
      const at = this.take(size);
      if (size === 1) return this.view.getInt8(at);
      if (size === 2) return this.view.getInt16(at);
      if (size === 4) return this.view.getInt32(at);
      return Number(this.view.getBigInt64(at));
    }

    str(n) {
      const at = this.take(n);
      return this.text.decode(this.bytes.subarray(at, at + n));
    }

    bin(n) {
      const at = this.take(n);
      return this.bytes.slice(at, at + n);
    }

    array(n, depth) {
      if (n > this.bytes.length - this.pos) throw new Error("truncated MessagePack");
      // Grown member by member: a header's count reserves nothing before its members arrive.
      const out = [];
      for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
      return out;
    }

    map(n, depth) {
      if (2 * n > this.bytes.length - this.pos) throw new Error("truncated MessagePack");
      const out = {};
      for (let i = 0; i < n; i++) {
        const key = this.value(depth + 1);
        if (typeof key !== "string") throw new Error("a map key that is not a string");
        const item = this.value(depth + 1);
        if (key === "__proto__") Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
        else out[key] = item;
      }
      return out;
    }

    value(depth) {
      if (depth > MSGPACK_MAX_DEPTH) throw new Error("nesting too deep");
      const b = this.bytes[this.take(1)];
      if (b < 0x80) return b;
      if (b >= 0xe0) return b - 0x100;
      if (b < 0x90) return this.map(b & 0x0f, depth);
      if (b < 0xa0) return this.array(b & 0x0f, depth);
      if (b < 0xc0) return this.str(b & 0x1f);
      switch (b) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: return this.bin(this.uint(1));
        case 0xc5: return this.bin(this.uint(2));
        case 0xc6: return this.bin(this.uint(4));
        case 0xca: return this.view.getFloat32(this.take(4));
        case 0xcb: return this.view.getFloat64(this.take(8));
        case 0xcc: return this.uint(1);
        case 0xcd: return this.uint(2);
        case 0xce: return this.uint(4);
        case 0xcf: return this.uint(8);
        case 0xd0: return this.int(1);
        case 0xd1: return this.int(2);
        case 0xd2: return this.int(4);
        case 0xd3: return this.int(8);
        case 0xd9: return this.str(this.uint(1));
        case 0xda: return this.str(this.uint(2));
        case 0xdb: return this.str(this.uint(4));
        case 0xdc: return this.array(this.uint(2), depth);
        case 0xdd: return this.array(this.uint(4), depth);
        case 0xde: return this.map(this.uint(2), depth);
        case 0xdf: return this.map(this.uint(4), depth);
        default: throw new Error(`MessagePack type 0x${b.toString(16)} is not accepted`);
      }
    }
  }

  // --- topics ---------------------------------------------------------------

  /** A position `{offset, epoch}` as given (from storage, the application), or null when malformed. */
  function checkedPosition(value) {
    if (!isPlainObject(value)) return null;
    const { offset, epoch } = value;
    if (!Number.isSafeInteger(offset) || offset < 0 || typeof epoch !== "string") return null;
    return { offset, epoch };
  }

  /** The storage of positions for option `positionStorage`, or null (none, or not usable here). */
  function positionStore(option) {
    if (option === false) return null;
    if (option === "session") {
      try {
        return root.sessionStorage || null; // Reading it throws where storage is blocked.
      } catch (err) {
        return null;
      }
    }
    return option; // An object with getItem, setItem and removeItem.
  }

  /**
   * One topic a client is subscribed to: made by Client.subscribe(), never directly.
   *
   * Events (use addEventListener; the event object carries the fields listed):
   * - "subscribed" {offset, epoch, recovered, resubscribe, state}: the server accepted the
   *   subscription; on the first subscribe, after every reconnection, and after a gap repair.
   * - "unrecovered" {since, position, reason}: publications after `since` may be lost (reason
   *   "history": the server answered `recovered: false`; "epoch": a publication came from a new
   *   epoch). The application refetches the topic's state.
   * - "unsubscribed" {error}: the subscription ended: unsubscribe() (error null), or the server
   *   refused it again after a reconnection (error: the RpcError).
   */
  class Subscription extends EventTarget {
    constructor(client, topic, onPublication, options) {
      super();
      this._client = client;
      this._topic = topic;
      this._onPublication = onPublication;
      this._onUnrecovered = options.onUnrecovered || null;
      this._onError = options.onError || null;
      this._persist = options.persist !== false;
      this._since = options.since === undefined || options.since === null ? null : options.since;
      this._position = null; // {offset, epoch} of the last publication delivered, or of the answer
      this._active = false; // subscribed on the current socket
      this._closed = false;
      this._attempt = null; // the rpc.subscribe in flight (answers of older ones are ignored)
      this._subscribedOnce = false;
      this._duplicates = 0;
      this._held = new Map(); // offset -> publication that came after a gap, until the gap is filled
      this._state = undefined;
      let resolve;
      let reject;
      this._ready = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this._ready.catch(() => {}); // Only the caller of subscribe() is told; nothing unhandled.
      this._settle = { resolve, reject };
    }

    /** The topic's name. */
    get topic() {
      return this._topic;
    }

    /** `{offset, epoch}` of the last publication delivered (or of the subscribe answer), or null. */
    get position() {
      return this._position === null ? null : { offset: this._position.offset, epoch: this._position.epoch };
    }

    /** True while the server has this subscription on the current connection. */
    get active() {
      return this._active;
    }

    /** True once ended: unsubscribe(), a refusal, or the client closing before the first answer. */
    get closed() {
      return this._closed;
    }

    /** How many publications were dropped because their offset had been delivered already. */
    get duplicates() {
      return this._duplicates;
    }

    /** The topic's initial state from the latest subscribe answer (undefined when the topic has none). */
    get state() {
      return this._state;
    }

    /**
     * Stop: no publication reaches the callback after this call, the kept position is forgotten,
     * and the server is told (`rpc.unsubscribe`) when connected.
     * @returns {Promise<void>} Settles when the server answered (at once when not connected);
     *   never rejects: a server that lost the socket has dropped the subscription anyway.
     */
    unsubscribe() {
      if (this._closed) return Promise.resolve();
      const wasActive = this._active;
      this._client._forgetSubscription(this, null);
      if (this._persist) this._client._storePosition(this._topic, null);
      if (!wasActive && this._attempt === null) return Promise.resolve();
      return this._client
        ._call("rpc.unsubscribe", { topic: this._topic }, this._client.options.timeout, null, false)
        .then(
          () => undefined,
          () => undefined,
        );
    }

    /** Where a (re)subscription starts: the last position, else `since`, else the stored one. */
    _startFrom() {
      if (this._position !== null) return this._position;
      if (this._since !== null) return this._since;
      return this._persist ? this._client._storedPosition(this._topic) : null;
    }

    _emit(type, detail) {
      const event = new Event(type);
      Object.assign(event, detail);
      this.dispatchEvent(event);
    }

    /** Take a position (a publication's, or an answer's); keep it in the storage. */
    _advance(position) {
      this._position = position;
      if (this._persist) this._client._storePosition(this._topic, position);
    }

    /**
     * A publication for this topic: delivered; dropped when its offset was delivered already;
     * held when it comes after a gap (offsets grow by one), until the missing ones arrive, live
     * or replayed by a subscribe from the position (which the client sends at once).
     */
    _deliver(publication) {
      const last = this._position;
      const sameEpoch = last !== null && last.epoch === publication.epoch;
      if (sameEpoch && publication.offset <= last.offset) {
        this._duplicates += 1;
        return;
      }
      if (sameEpoch && this._active && publication.offset > last.offset + 1) {
        if (this._held.has(publication.offset)) this._duplicates += 1;
        else this._held.set(publication.offset, publication);
        this._client._repair(this);
        return;
      }
      const newEpoch = last !== null && !sameEpoch && this._active;
      this._take(publication);
      if (newEpoch) this._unrecovered(last, "epoch");
      this._release();
    }

    _take(publication) {
      this._advance({ offset: publication.offset, epoch: publication.epoch });
      try {
        this._onPublication.call(this, publication, this);
      } catch (err) {
        this._client._emit("error", { error: err });
        reportError(err);
      }
    }

    /** Deliver the held publications that follow the position; true when a gap remains. */
    _release() {
      for (const [offset, held] of Array.from(this._held)) {
        const position = this._position;
        if (position === null || held.epoch !== position.epoch || offset <= position.offset) {
          this._held.delete(offset); // Delivered meanwhile, or of an epoch that is gone.
          this._duplicates += 1;
        }
      }
      let next;
      while (this._position !== null && (next = this._held.get(this._position.offset + 1)) !== undefined) {
        this._held.delete(next.offset);
        this._take(next);
      }
      return this._held.size > 0;
    }

    /** The server accepted an rpc.subscribe that asked for `since` (or null). */
    _accepted(result, since) {
      const offset = result.offset;
      const epoch = result.epoch;
      const last = this._position;
      if (last === null || last.epoch !== epoch || offset > last.offset) this._advance({ offset, epoch });
      const recovered = result.recovered === true;
      this._state = result.state;
      this._active = true;
      const resubscribe = this._subscribedOnce;
      this._subscribedOnce = true;
      this._emit("subscribed", { offset, epoch, recovered, resubscribe, state: result.state });
      if (!resubscribe) this._settle.resolve(this);
      if (since !== null && !recovered) this._unrecovered(since, "history");
      if (this._release()) this._client._repair(this);
    }

    _unrecovered(since, reason) {
      const detail = { since, position: this.position, reason };
      this._emit("unrecovered", detail);
      if (this._onUnrecovered) {
        try {
          this._onUnrecovered.call(this, Object.assign({ topic: this._topic, subscription: this }, detail));
        } catch (err) {
          this._client._emit("error", { error: err });
          reportError(err);
        }
      }
    }

    /** The subscription ended: unsubscribe() (error null), a refusal, or the client closed. */
    _ended(error) {
      if (!this._subscribedOnce) {
        if (error !== null) this._settle.reject(error);
        return;
      }
      this._emit("unsubscribed", { error });
      if (error !== null && this._onError) {
        try {
          this._onError.call(this, error);
        } catch (err) {
          reportError(err);
        }
      }
    }
  }

  // --- the client -----------------------------------------------------------

  /**
   * A JSON-RPC 2.0 peer over one WebSocket that reconnects by itself.
   *
   * Events (use addEventListener; the event object carries the fields listed):
   * - "open": the socket opened.
   * - "connected" {id, reconnect, recovered}: the server sent rpc.connected; fires on every connection.
   * - "reconnected" {id, previousId, recovered}: after "connected", when this is not the first connection.
   * - "recovered" {id, replayed}: after those, when the server resumed the session (same id, groups,
   *   and the missed notifications follow).
   * - "recoveryfailed" {reason, previousId, id}: after those, when a resume was asked for and the
   *   server gave a fresh socket instead: the application must refresh its state.
   * - "close" {code, reason, wasClean, willReconnect}: an open connection closed, or the client gave up.
   * - "reconnecting" {attempt, delay, code, reason}: the next attempt starts in `delay` ms.
   * - "statechange" {state, previous}: `state` changed.
   * - "error" {error}: a notification handler threw, or the server sent an error with id null.
   */
  class Client extends EventTarget {
    /**
     * @param {string|(() => string)} url ws:// or wss:// URL, or a path ("/ws/chat/lobby/") on this
     *   page's host; a function is called before each attempt (e.g. to refresh a token).
     * @param {object} [options] See docs/client.md; every option has a default in Client.defaults.
     */
    constructor(url, options) {
      super();
      if (typeof url !== "string" && typeof url !== "function") {
        throw new TypeError(`url must be a string or a function, not ${typeof url}`);
      }
      /** The URL (or URL factory) given to the constructor. */
      this.url = url;
      const given = {};
      for (const [key, value] of Object.entries(options || {})) {
        if (!(key in DEFAULTS)) throw new TypeError(`unknown option ${JSON.stringify(key)}`);
        if (value !== undefined && value !== null) given[key] = value; // keeps the default
      }
      /** The effective options: the constructor's (but undefined or null) over Client.defaults. */
      this.options = Object.freeze(Object.assign({}, DEFAULTS, given));
      if (this.options.encoding !== "json" && this.options.encoding !== "msgpack") {
        throw new TypeError(`encoding must be "json" or "msgpack", not ${JSON.stringify(this.options.encoding)}`);
      }
      this._binary = this.options.encoding === "msgpack";
      this._state = States.IDLE;
      this._ws = null;
      this._id = null;
      this._previousId = null;
      this._connectedBefore = false;
      this._nextId = 1;
      this._pending = new Map(); // id -> call, sent and waiting for the answer
      this._streams = new Map(); // id -> inbound items of an open stream
      this._uploads = new Map(); // id -> credit of an open upload
      this._queue = []; // {call} or {text, method}, waiting for an open connection
      this._handlers = new Map();
      this._attempt = 0;
      this._retryTimer = null;
      this._connectTimer = null;
      this._heartbeatTimer = null;
      this._pingInFlight = false;
      this._ready = null; // deferred settled by the next rpc.connected
      // Recovery (docs/client.md): the session's token and window from rpc.connected, the
      // greatest notification offset seen and the offsets seen (to drop replayed duplicates).
      this._token = null;
      this._window = 0;
      this._highest = null; // {text, pair}
      this._seen = new Set();
      this._greeted = false; // the current socket got rpc.connected
      this._resume = null; // {token, until}: attempts before `until` ask to resume
      this._resuming = null; // {previousId}: the current attempt asked to resume
      this._pageHide = (event) => this._onPageHide(event);
      // Topics (docs/client.md, "Topics"): topic -> Subscription, and where positions are kept.
      this._subscriptions = new Map();
      this._positions = positionStore(this.options.positionStorage);
      this._place = ""; // host and path of the current socket's URL: part of each position's key
      this._ignoredPublications = 0;
    }

    /** The default options. */
    static get defaults() {
      return DEFAULTS;
    }

    /** The socket id the server gave this connection (rpc.connected), or null while not connected. */
    get id() {
      return this._id;
    }

    /** "idle", "connecting", "open", "reconnecting" or "closed" (see States). */
    get state() {
      return this._state;
    }

    /** True when a connection is open and messages are sent at once. */
    get connected() {
      return this._state === States.OPEN;
    }

    /** How many calls and notifications wait in the queue for a connection. */
    get queued() {
      return this._queue.length;
    }

    /** The subscriptions of this client (Client.subscribe), by topic. */
    get subscriptions() {
      return new Map(this._subscriptions);
    }

    /** How many publications arrived for a topic this client is not subscribed to (dropped). */
    get ignoredPublications() {
      return this._ignoredPublications;
    }

    /**
     * Open the connection (and keep it open, reconnecting as configured).
     * Calling it again while connecting or open does nothing new.
     * @returns {Promise<string>} Resolves with the socket id at the next rpc.connected; rejects
     *   with NotConnectedError when the client closes (or gives up) before that.
     */
    connect() {
      if (this._state === States.OPEN && this._id !== null) {
        return Promise.resolve(this._id);
      }
      const promise = this._readyPromise();
      if (this._state === States.IDLE || this._state === States.CLOSED) {
        this._attempt = 0;
        this._connectedBefore = false;
        this._previousId = null;
        this._watchPage(true);
        this._open();
      }
      return promise;
    }

    /**
     * Close the connection for good: no reconnection. Calls waiting for an answer reject with
     * ConnectionLostError, queued ones with NotConnectedError. connect() starts again.
     *
     * On an open socket the client first says `rpc.close` (with the code), then sends its close
     * frame: the server releases the socket at once and for good (never kept for recovery),
     * whatever close code the server itself reports (hypercorn reports 1006 for every close).
     * @param {number} [code=1000] Close code: 1000 or 3000-4999.
     * @param {string} [reason=""] Close reason (at most 123 bytes of UTF-8).
     */
    close(code = CloseCodes.NORMAL, reason = "") {
      if (this._state === States.CLOSED || this._state === States.IDLE) {
        this._finish(code, reason, true, false);
        return;
      }
      const ws = this._detach();
      if (ws) {
        sayClose(ws, code);
        try {
          ws.close(code, reason);
        } catch (err) {
          ws.close();
        }
      }
      this._failPending(code, reason);
      this._finish(code, reason, true, true);
    }

    /**
     * Call a server method with positional params.
     * @param {string} method The method name.
     * @param {...*} params Positional params (JSON-serialisable).
     * @returns {Promise<*>} The result; rejects with RpcError, ConnectionLostError,
     *   NotConnectedError or InvokeTimeoutError.
     */
    invoke(method, ...params) {
      return this.invokeWithOptions(method, params);
    }

    /**
     * Call a server method with explicit params and per-call options.
     * @param {string} method The method name.
     * @param {Array|Object} [params] Positional (array) or named (object) params; omitted when undefined.
     * @param {{timeout?: number, signal?: AbortSignal, queue?: boolean}} [options] `timeout` in ms
     *   (0 or Infinity: none; default `options.timeout` of the client); `signal` aborts the wait
     *   (rejects with its reason); `queue: false` rejects at once while not connected instead of
     *   queueing (default: the client's `queueCalls`).
     * @returns {Promise<*>} As invoke().
     */
    invokeWithOptions(method, params, options) {
      const opts = options || {};
      const timeout = opts.timeout === undefined ? this.options.timeout : opts.timeout;
      const queue = opts.queue === undefined ? this.options.queueCalls : opts.queue;
      return this._call(method, params, timeout, opts.signal, Boolean(queue));
    }

    /**
     * Call a streaming method (an async generator on the server) and iterate over its items:
     * `for await (const item of client.stream("count", 10, {signal})) ...`. The last argument is
     * taken as the options when it is a plain object whose only keys are `signal` and `window`
     * (use streamWithOptions() when a param could look like that).
     * @param {string} method The method name.
     * @param {...*} params Positional params, optionally followed by `{signal, window}`.
     * @returns {AsyncGenerator<*, void, undefined>} As streamWithOptions().
     */
    stream(method, ...params) {
      const last = params[params.length - 1];
      if (isStreamOptions(last)) return this.streamWithOptions(method, params.slice(0, -1), last);
      return this.streamWithOptions(method, params);
    }

    /**
     * Call a streaming method with explicit params; iterate over its items in order, each once.
     * Credit is granted back as items are consumed: at most `window` items (default 64) are on
     * their way ahead of the loop. Leaving the loop early (break, return, throw) or aborting
     * `signal` sends `rpc.cancel` and the server closes its generator. Never queued: throws
     * NotConnectedError when not connected.
     * @param {string} method The method name.
     * @param {Array|Object} [params] Positional (array) or named (object) params.
     * @param {{signal?: AbortSignal, window?: number}} [options]
     * @returns {AsyncGenerator<*, void, undefined>} Throws RpcError (the generator raised, or the
     *   call was refused: -32020 too many streams...), ConnectionLostError, NotConnectedError, or
     *   the signal's reason.
     */
    async *streamWithOptions(method, params, options) {
      const opts = options || {};
      const window = opts.window === undefined ? 64 : opts.window;
      if (!Number.isInteger(window) || window < 1) {
        throw new TypeError(`window must be a positive integer, not ${window}`);
      }
      const signal = opts.signal;
      if (signal && signal.aborted) throw signal.reason;
      const ws = this._ws;
      if (this._state !== States.OPEN || !ws || ws.readyState !== OPEN) {
        throw new NotConnectedError(method, this._state === States.CLOSED ? "closed" : "not-queued");
      }
      const id = this._nextId++;
      // credit/cap: the stream's initial credit and most credit, announced by its first item.
      const inbound = { items: [], done: false, error: null, wake: null, announced: false, credit: null, cap: null };
      const wake = () => {
        const resolve = inbound.wake;
        inbound.wake = null;
        if (resolve) resolve();
      };
      const finish = (error) => {
        inbound.done = true;
        inbound.error = error;
        wake();
      };
      const call = {
        id,
        method,
        text: this._encodeRequest(method, params, id),
        resolve: () => finish(null),
        reject: (error) => finish(error),
        timer: null,
        signal: null,
        onAbort: null,
      };
      let cancelSent = false;
      const sendCancel = () => {
        if (!cancelSent) {
          cancelSent = true;
          this._streamWord(ws, "rpc.cancel", { id });
        }
      };
      const onAbort = () => {
        const live = !inbound.done;
        inbound.items.length = 0;
        this._settle(call, null, signal.reason);
        if (live) sendCancel(); // at once, even while the loop body still awaits something
      };
      if (signal) signal.addEventListener("abort", onAbort);
      this._streams.set(id, inbound);
      this._pending.set(id, call);
      ws.send(call.text);
      let outstanding = null; // credit granted (the initial credit included) and not consumed
      let cancelled = false;
      try {
        for (;;) {
          if (inbound.items.length > 0) {
            const item = inbound.items.shift();
            // The window, cut to the stream's cap (the server drops credit past it); a grant goes
            // out whenever the window has room for half of it, so no grant is ever cut.
            const limit = inbound.cap === null ? window : Math.min(window, inbound.cap);
            if (outstanding === null) outstanding = inbound.credit === null ? STREAM_CREDIT : inbound.credit;
            outstanding -= 1;
            const grant = limit - outstanding;
            if (grant >= Math.max(1, Math.floor(limit / 2))) {
              outstanding += grant;
              this._streamWord(ws, "rpc.stream.credit", { id, n: grant });
            }
            yield item;
            continue;
          }
          if (inbound.done) {
            cancelled = signal !== undefined && signal !== null && inbound.error === signal.reason;
            if (inbound.error) throw inbound.error;
            return;
          }
          await new Promise((resolve) => {
            inbound.wake = resolve;
          });
        }
      } finally {
        this._streams.delete(id);
        if (signal) signal.removeEventListener("abort", onAbort);
        if (!inbound.done || cancelled) {
          this._settle(call, null, null);
          sendCancel(); // ended early: the server stops too
        }
      }
    }

    /**
     * Call a method that reads an upload (an `AsyncIterator` param on the server) and send it
     * `items` (an iterable or an async iterable), one per unit of the credit the server grants,
     * then `rpc.stream.end`. Resolves with the method's result (which may come before every item
     * was sent: the rest is not sent). Aborting `options.signal` sends `rpc.cancel`.
     * @param {string} method The method name.
     * @param {Iterable<*>|AsyncIterable<*>} items What to upload.
     * @param {Array|Object} [params] The method's other params.
     * @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<*>} Rejects like invoke(), or with what the iterable threw.
     */
    upload(method, items, params, options) {
      const signal = (options || {}).signal;
      if (signal && signal.aborted) return Promise.reject(signal.reason);
      const ws = this._ws;
      if (this._state !== States.OPEN || !ws || ws.readyState !== OPEN) {
        const reason = this._state === States.CLOSED ? "closed" : "not-queued";
        return Promise.reject(new NotConnectedError(method, reason));
      }
      const id = this._nextId++;
      const credit = { n: 0, ended: false, wake: null };
      const poke = () => {
        const resolve = credit.wake;
        credit.wake = null;
        if (resolve) resolve();
      };
      this._uploads.set(id, { grant: (n) => ((credit.n += n), poke()) });
      return new Promise((resolve, reject) => {
        const call = {
          id,
          method,
          text: this._encodeRequest(method, params === undefined ? [] : params, id),
          resolve,
          reject,
          timer: null,
          signal: null,
          onAbort: null,
        };
        if (signal) {
          call.signal = signal;
          call.onAbort = () => {
            this._settle(call, null, signal.reason);
            this._streamWord(ws, "rpc.cancel", { id });
          };
          signal.addEventListener("abort", call.onAbort);
        }
        this._pending.set(id, call);
        ws.send(call.text);
        const send = async () => {
          const iterator = items[Symbol.asyncIterator] ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
          for (;;) {
            while (credit.n <= 0 && !call.done) await new Promise((r) => (credit.wake = r));
            if (call.done) break;
            const next = await iterator.next();
            if (next.done || call.done) break;
            credit.n -= 1;
            this._streamWord(ws, "rpc.stream.item", { id, item: next.value });
          }
          if (!call.done) this._streamWord(ws, "rpc.stream.end", { id });
          else if (typeof iterator.return === "function") await iterator.return();
        };
        send().catch((err) => {
          this._settle(call, null, err);
          this._streamWord(ws, "rpc.cancel", { id });
        });
      }).finally(() => {
        this._uploads.delete(id);
        credit.ended = true;
        poke();
      });
    }

    _streamWord(ws, method, params) {
      if (ws === this._ws && ws.readyState === OPEN) ws.send(this._encodeRequest(method, params, undefined));
    }

    _onStreamItem(params) {
      const inbound = isPlainObject(params) ? this._streams.get(params.id) : undefined;
      if (inbound === undefined || inbound.done || !("item" in params)) return; // late: dropped
      if (!inbound.announced) {
        // The first item announces the stream's initial credit and cap (docs/protocol.md, 14).
        inbound.announced = true;
        if (Number.isInteger(params.credit) && params.credit > 0) inbound.credit = params.credit;
        if (Number.isInteger(params.max_credit) && params.max_credit > 0) inbound.cap = params.max_credit;
      }
      inbound.items.push(params.item);
      const resolve = inbound.wake;
      inbound.wake = null;
      if (resolve) resolve();
    }

    /**
     * Send a notification (no answer). Sent at once when open, otherwise queued.
     * @param {string} method The method name.
     * @param {...*} params Positional params.
     * @throws {NotConnectedError} When it can be neither sent nor queued.
     */
    notify(method, ...params) {
      const text = this._encodeRequest(method, params, undefined);
      if (this._sendText(text)) return;
      const reason = this._unqueueableReason();
      if (reason) throw new NotConnectedError(method, reason);
      this._queue.push({ text, method });
    }

    /**
     * Serve a method the server may call or notify. The handler gets the positional params as
     * arguments (or the named params object as its one argument); its return value, or what its
     * Promise resolves to, is the result. A throw (or rejection) answers with an error: the thrown
     * value's `code`, `message` and `data` when `code` is an integer (throw an RpcError), otherwise
     * -32603 Internal error. One handler per method: a new one replaces the old.
     * @param {string} method The method name (not "rpc.*", which are built in).
     * @param {Function|null} handler The handler, or null to remove it.
     * @returns {() => void} A function that removes this handler.
     */
    on(method, handler) {
      if (typeof method !== "string" || method.startsWith("rpc.")) {
        throw new TypeError(`cannot serve ${JSON.stringify(method)}: need a string not starting with "rpc."`);
      }
      if (handler === null || handler === undefined) {
        this._handlers.delete(method);
        return () => {};
      }
      if (typeof handler !== "function") throw new TypeError("handler must be a function");
      this._handlers.set(method, handler);
      return () => {
        if (this._handlers.get(method) === handler) this._handlers.delete(method);
      };
    }

    /**
     * Stop serving a method.
     * @param {string} method The method name.
     */
    off(method) {
      this._handlers.delete(method);
    }

    /**
     * Subscribe to a topic (docs/client.md, "Topics"): the server checks that this socket may see
     * it, then sends each publication as `rpc.publication`; `onPublication({topic, offset, epoch,
     * event, data}, subscription)` gets them once and in offset order. After every reconnection
     * the client subscribes again from the last position, and so does a reloaded page (positions
     * are kept in sessionStorage unless `positionStorage: false` or `persist: false`).
     * Sent once a connection is open (a call made before connect() waits for it).
     * @param {string} topic The topic's name, e.g. "tasks" or "user.42".
     * @param {Function} onPublication Called with each publication and the subscription.
     * @param {{since?: {offset: number, epoch: string}, onUnrecovered?: Function, onError?: Function,
     *   persist?: boolean}} [options] `since`: the position the application's state is current as
     *   of (publications after it are replayed when the server still has them); it wins over a
     *   stored position. `onUnrecovered({topic, since, position, reason, subscription})`: what was
     *   missed cannot be replayed, refetch. `onError(error)`: a resubscription was refused.
     * @returns {Promise<Subscription>} Resolves when the server accepted; rejects with RpcError
     *   (-32010 unknown topic, -32011 not authorized, -32012 too many subscriptions, -32602 bad
     *   params), InvokeTimeoutError, or NotConnectedError when the client is or becomes closed first.
     */
    subscribe(topic, onPublication, options) {
      if (typeof topic !== "string" || topic === "") throw new TypeError("topic must be a non-empty string");
      if (typeof onPublication !== "function") throw new TypeError("onPublication must be a function");
      const opts = options === undefined || options === null ? {} : options;
      if (!isPlainObject(opts)) throw new TypeError("options must be an object");
      for (const key of Object.keys(opts)) {
        if (!SUBSCRIBE_OPTIONS.includes(key)) {
          throw new TypeError(`unknown subscribe option ${JSON.stringify(key)}`);
        }
      }
      if (opts.since !== undefined && opts.since !== null && checkedPosition(opts.since) === null) {
        throw new TypeError("since must be {offset: a non-negative integer, epoch: a string}");
      }
      if (this._state === States.CLOSED) {
        return Promise.reject(new NotConnectedError("rpc.subscribe", "closed"));
      }
      if (this._subscriptions.has(topic)) {
        return Promise.reject(new WsManagerError(`already subscribed to ${JSON.stringify(topic)}`));
      }
      const sub = new Subscription(this, topic, onPublication, opts);
      this._subscriptions.set(topic, sub);
      if (this._greeted) this._sendSubscribe(sub);
      return sub._ready;
    }

    // --- topics ---------------------------------------------------------------

    _sendSubscribe(sub) {
      const since = sub._startFrom();
      const params = { topic: sub.topic };
      if (since !== null) params.since = { offset: since.offset, epoch: since.epoch };
      const attempt = {};
      sub._attempt = attempt;
      this._call("rpc.subscribe", params, this.options.timeout, null, false).then(
        (result) => {
          if (sub._attempt !== attempt) return;
          sub._attempt = null;
          const valid =
            isPlainObject(result) && Number.isSafeInteger(result.offset) && typeof result.epoch === "string";
          if (!valid) {
            const text = JSON.stringify(result);
            this._refused(sub, new WsManagerError(`rpc.subscribe answered without offset and epoch: ${text}`));
            return;
          }
          sub._accepted(result, since);
        },
        (err) => {
          if (sub._attempt !== attempt) return; // The socket is gone: the next one subscribes again.
          sub._attempt = null;
          this._refused(sub, err);
        },
      );
    }

    /** An rpc.subscribe failed on an open connection: the subscription ends. */
    _refused(sub, error) {
      if (error instanceof InvokeTimeoutError) {
        // The server may have subscribed late: undo it (the answer is not awaited).
        const params = { topic: sub.topic };
        this._call("rpc.unsubscribe", params, this.options.timeout, null, false).catch(() => {});
      }
      this._forgetSubscription(sub, error);
    }

    /** Remove a subscription; `error` (not null) says why it ended without unsubscribe(). */
    _forgetSubscription(sub, error) {
      if (sub._closed) return;
      sub._closed = true;
      sub._active = false;
      sub._attempt = null;
      if (this._subscriptions.get(sub.topic) === sub) this._subscriptions.delete(sub.topic);
      sub._ended(error);
    }

    /** A gap in a subscription's offsets: subscribe again from its position (the server replays). */
    _repair(sub) {
      if (this._greeted && sub._attempt === null && !sub._closed) this._sendSubscribe(sub);
    }

    /** Subscribe again on a new connection, from each subscription's position. */
    _resubscribe() {
      for (const sub of Array.from(this._subscriptions.values())) {
        if (this._greeted && !sub._closed) this._sendSubscribe(sub);
      }
    }

    _onPublication(params) {
      const p = isPlainObject(params) ? params : {};
      const sub = typeof p.topic === "string" ? this._subscriptions.get(p.topic) : undefined;
      if (sub === undefined || !Number.isSafeInteger(p.offset) || typeof p.epoch !== "string") {
        this._ignoredPublications += 1; // Unsubscribed meanwhile, or malformed.
        return;
      }
      sub._deliver({ topic: p.topic, offset: p.offset, epoch: p.epoch, event: p.event, data: p.data });
    }

    _positionKey(topic) {
      return `${POSITION_KEY} ${this._place} ${topic}`;
    }

    /** The position kept for `topic` (a reloaded page's), or null. */
    _storedPosition(topic) {
      if (this._positions === null) return null;
      try {
        const text = this._positions.getItem(this._positionKey(topic));
        return text === null || text === undefined ? null : checkedPosition(JSON.parse(text));
      } catch (err) {
        return null; // Blocked or full storage, or a value that is not ours: start without.
      }
    }

    /** Keep (or, with null, forget) the position of `topic`; storage errors are ignored. */
    _storePosition(topic, position) {
      if (this._positions === null) return;
      try {
        if (position === null) this._positions.removeItem(this._positionKey(topic));
        else this._positions.setItem(this._positionKey(topic), JSON.stringify(position));
      } catch (err) {
        // Full or blocked storage: the position is kept in memory only.
      }
    }

    // --- lifecycle ------------------------------------------------------------

    _transition(to) {
      const from = this._state;
      if (!TRANSITIONS[from].includes(to)) {
        throw new Error(
          `wsmanager: illegal state change ${from} -> ${to}; expected one of ${TRANSITIONS[from].join(", ")}`,
        );
      }
      this._state = to;
      if (from !== to) this._emit("statechange", { state: to, previous: from });
    }

    _emit(type, detail) {
      const event = new Event(type);
      Object.assign(event, detail || {});
      this.dispatchEvent(event);
    }

    _readyPromise() {
      if (!this._ready) {
        let resolve;
        let reject;
        const promise = new Promise((res, rej) => {
          resolve = res;
          reject = rej;
        });
        promise.catch(() => {}); // connect() may be fire-and-forget.
        this._ready = { promise, resolve, reject };
      }
      return this._ready.promise;
    }

    _open() {
      this._transition(States.CONNECTING);
      const WS = this.options.WebSocket || root.WebSocket;
      let ws;
      try {
        const url = this._attemptUrl(resolveUrl(typeof this.url === "function" ? this.url() : this.url));
        const where = new URL(url);
        this._place = `${where.host}${where.pathname}`;
        let protocols = this.options.protocols;
        if (this._binary) {
          protocols = [MSGPACK_SUBPROTOCOL].concat(protocols === undefined ? [] : protocols);
        }
        ws = protocols === undefined ? new WS(url) : new WS(url, protocols);
        if (this._binary) ws.binaryType = "arraybuffer";
      } catch (err) {
        // A bad URL will not get better by retrying.
        reportError(err);
        this._finish(CloseCodes.ABNORMAL, `cannot open: ${err.message}`, false, true);
        return;
      }
      this._ws = ws;
      ws.onopen = () => this._onOpen(ws);
      ws.onmessage = (event) => this._onMessage(ws, event);
      ws.onclose = (event) => {
        if (ws === this._ws) this._lost(event.code, event.reason, event.wasClean);
      };
      ws.onerror = () => {}; // A close event always follows.
      if (Number.isFinite(this.options.connectTimeout) && this.options.connectTimeout > 0) {
        this._connectTimer = setTimeout(() => {
          if (ws === this._ws) this._drop("connect timeout");
        }, this.options.connectTimeout);
      }
    }

    /** Listen to the page going away (browsers only: not in workers or Node). */
    _watchPage(on) {
      if (!root.document || typeof root.addEventListener !== "function") return;
      if (on) root.addEventListener("pagehide", this._pageHide);
      else root.removeEventListener("pagehide", this._pageHide);
    }

    /**
     * The page is unloaded or goes into the back/forward cache (docs/client.md, "When the page
     * goes away"). Left alone, the browser closes the socket with 1001, or drops it, which a
     * server offering recovery takes for a drop: it would keep the session, and the member
     * online, for the whole window. So the client closes on purpose (rpc.close, then 1000
     * "page closed"): the server releases the socket at once, on every server. A page restored
     * from the cache connects again, as a fresh session (what it missed is not replayed).
     * A page merely hidden (another tab, a minimised window) keeps its socket: nothing here.
     */
    _onPageHide(event) {
      if (this._state === States.CLOSED || this._state === States.IDLE) return;
      this.close(CloseCodes.NORMAL, "page closed");
      if (!event.persisted) return;
      const onShow = (shown) => {
        if (shown.persisted && this._state === States.CLOSED) this.connect();
      };
      root.addEventListener("pageshow", onShow, { once: true });
    }

    /** The URL of this attempt: with wsm_resume and wsm_offset while a resume is possible. */
    _attemptUrl(url) {
      this._resuming = null;
      if (this._resume && Date.now() >= this._resume.until) this._resume = null;
      if (!this._resume) return url.includes("wsm_") ? withResumeParams(url, {}) : url;
      this._resuming = { previousId: this._previousId };
      const params = { wsm_resume: this._resume.token };
      if (this._highest) params.wsm_offset = this._highest.text;
      return withResumeParams(url, params);
    }

    _onOpen(ws) {
      if (ws !== this._ws) return;
      clearTimeout(this._connectTimer);
      this._connectTimer = null;
      if (this._binary && ws.protocol !== MSGPACK_SUBPROTOCOL) {
        // The server chose no MessagePack (an older server, or a handler without it): give up.
        const reason = "the server does not accept MessagePack";
        this._detach();
        try {
          ws.close(CloseCodes.POLICY_VIOLATION, "MessagePack not accepted");
        } catch (err) {
          ws.close();
        }
        this._failPending(CloseCodes.POLICY_VIOLATION, reason);
        this._finish(CloseCodes.POLICY_VIOLATION, reason, false, true);
        return;
      }
      this._attempt = 0;
      this._transition(States.OPEN);
      if (ws !== this._ws) return; // A listener closed the client.
      this._emit("open");
      if (ws !== this._ws) return;
      this._startHeartbeat(ws);
      this._flush();
    }

    _onConnected(params) {
      const given = isPlainObject(params) ? params : {};
      const id = typeof given.id === "string" ? given.id : null;
      this._id = id;
      this._greeted = true;
      const outcome = this._recoveryOutcome(given, id);
      const recovered = outcome !== null && outcome.type === "recovered";
      const reconnect = this._connectedBefore;
      this._connectedBefore = true;
      const ready = this._ready;
      this._ready = null;
      this._emit("connected", { id, reconnect, recovered });
      if (reconnect) this._emit("reconnected", { id, previousId: this._previousId, recovered });
      if (outcome) this._emit(outcome.type, outcome.detail);
      this._resubscribe();
      if (ready) ready.resolve(id);
    }

    /**
     * Take in rpc.connected's recovery params: keep the new token and window; keep the offsets
     * seen when the session was resumed, start afresh otherwise. Returns the event to emit
     * when this attempt asked to resume ({type, detail}), else null.
     */
    _recoveryOutcome(params, id) {
      const resuming = this._resuming;
      this._resuming = null;
      this._resume = null;
      const recovery = isPlainObject(params.recovery) ? params.recovery : {};
      this._token = typeof recovery.token === "string" && recovery.token !== "" ? recovery.token : null;
      this._window = Number.isFinite(recovery.window) && recovery.window > 0 ? recovery.window : 0;
      const offset = parseOffset(recovery.offset);
      const recovered = resuming !== null && params.recovered === true;
      if (!recovered) {
        this._seen.clear();
        this._highest = null;
      }
      if (offset && (this._highest === null || isLater(offset, this._highest.pair))) {
        this._highest = { text: recovery.offset, pair: offset };
      }
      if (resuming === null) return null;
      if (recovered) {
        const replayed = Number.isInteger(params.replayed) ? params.replayed : 0;
        return { type: "recovered", detail: { id, replayed } };
      }
      // A server without recovery ignores wsm_resume and says nothing: "unsupported".
      const reason = typeof params.recovery_failed === "string" ? params.recovery_failed : "unsupported";
      return { type: "recoveryfailed", detail: { reason, previousId: resuming.previousId, id } };
    }

    /** Whether a notification with this `offset` member was delivered before (then drop it). */
    _isDuplicate(text) {
      const pair = parseOffset(text);
      if (pair === null) return false; // Not an offset: delivered, not tracked.
      if (this._seen.has(text)) return true;
      this._seen.add(text);
      if (this._seen.size > SEEN_LIMIT) this._seen.delete(this._seen.values().next().value);
      if (this._highest === null || isLater(pair, this._highest.pair)) this._highest = { text, pair };
      return false;
    }

    /** Stop using the current socket: no more events from it. Returns it (or null). */
    _detach() {
      const ws = this._ws;
      this._ws = null;
      clearTimeout(this._connectTimer);
      clearTimeout(this._retryTimer);
      clearInterval(this._heartbeatTimer);
      this._connectTimer = this._retryTimer = this._heartbeatTimer = null;
      this._pingInFlight = false;
      for (const sub of this._subscriptions.values()) {
        sub._active = false;
        sub._attempt = null; // Its answer will not come on this socket: the next one subscribes again.
        sub._held.clear(); // The next subscribe replays them.
      }
      if (this._id !== null) this._previousId = this._id;
      this._id = null;
      this._greeted = false;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      }
      return ws;
    }

    /** Give up on a socket that looks dead (no open, or no pong) as if it had closed with 1006. */
    _drop(reason) {
      const greeted = this._greeted;
      const ws = this._detach();
      if (ws) {
        try {
          ws.close(CloseCodes.NORMAL, reason);
        } catch (err) {
          // Closing can only fail on odd states; the socket is detached anyway.
        }
      }
      this._afterLoss(CloseCodes.ABNORMAL, reason, false, greeted);
    }

    _lost(code, reason, wasClean) {
      const greeted = this._greeted;
      this._detach();
      this._afterLoss(code, reason, wasClean, greeted);
    }

    _afterLoss(code, reason, wasClean, greeted) {
      const wasOpen = this._state === States.OPEN;
      if (greeted) {
        // The session's socket is gone: resume it within the window after an abrupt loss.
        // (A failed attempt, never greeted, leaves the decision as it was.)
        const resumable = this.options.recover && this._token !== null && RESUMABLE_CODES.includes(code);
        this._resume = resumable ? { token: this._token, until: Date.now() + this._window * 1000 } : null;
      }
      this._failPending(code, reason);
      if (!this._shouldRetry(code, reason)) {
        this._finish(code, reason, wasClean, true);
        return;
      }
      this._attempt += 1;
      const delay = this._backoff(this._attempt);
      // The timer is set first so that a listener calling close() clears it.
      this._retryTimer = setTimeout(() => {
        this._retryTimer = null;
        this._open();
      }, delay);
      this._transition(States.RECONNECTING);
      if (wasOpen && this._state === States.RECONNECTING)
        this._emit("close", { code, reason, wasClean, willReconnect: true });
      if (this._state === States.RECONNECTING) {
        this._emit("reconnecting", { attempt: this._attempt, delay, code, reason });
      }
    }

    _shouldRetry(code, reason) {
      const o = this.options;
      if (!o.reconnect || this._attempt >= o.maxReconnectAttempts) return false;
      if (typeof o.shouldReconnect === "function") return Boolean(o.shouldReconnect({ code, reason }));
      return !Client.isFinalCloseCode(code);
    }

    /**
     * Whether the default policy gives up after this close code: 1000 (the server ended the
     * session), 1003 and 1008 (the server refuses this client), and 4400-4499 (application
     * "client error" codes such as 4403, and 4409: another connection resumed this session).
     * Everything else, including 1006, is retried.
     * @param {number} code A WebSocket close code.
     * @returns {boolean}
     */
    static isFinalCloseCode(code) {
      return (
        code === CloseCodes.NORMAL ||
        code === CloseCodes.UNSUPPORTED_DATA ||
        code === CloseCodes.POLICY_VIOLATION ||
        (code >= 4400 && code <= 4499)
      );
    }

    /** Delay before attempt `n` (1-based): exponential, capped, with random jitter below the cap. */
    _backoff(attempt) {
      const o = this.options;
      const base = Math.min(o.reconnectMaxDelay, o.reconnectDelay * Math.pow(o.reconnectFactor, attempt - 1));
      const jitter = Math.min(Math.max(o.reconnectJitter, 0), 1);
      return Math.round(base * (1 - jitter * Math.random()));
    }

    /** Become closed: reject what is queued and the connect() promise, emit "close" when asked. */
    _finish(code, reason, wasClean, emitClose) {
      this._detach();
      this._watchPage(false);
      this._resume = this._resuming = this._token = this._highest = null;
      this._seen.clear();
      const queue = this._queue;
      this._queue = [];
      for (const entry of queue) {
        if (entry.call) this._settle(entry.call, null, new NotConnectedError(entry.call.method, "closed"));
      }
      for (const sub of Array.from(this._subscriptions.values())) {
        if (sub._subscribedOnce) continue;
        this._forgetSubscription(sub, new NotConnectedError("rpc.subscribe", "closed"));
      }
      const ready = this._ready;
      this._ready = null;
      this._transition(States.CLOSED);
      if (ready) ready.reject(new NotConnectedError("connect", "closed"));
      if (emitClose) this._emit("close", { code, reason, wasClean, willReconnect: false });
    }

    _failPending(code, reason) {
      const pending = Array.from(this._pending.values());
      this._pending.clear();
      for (const call of pending) {
        this._settle(call, null, new ConnectionLostError(call.method, code, reason));
      }
    }

    // --- outgoing -------------------------------------------------------------

    _encodeRequest(method, params, id) {
      if (typeof method !== "string") throw new TypeError("method must be a string");
      if (params !== undefined && !Array.isArray(params) && !isPlainObject(params)) {
        throw new TypeError("params must be an array or an object");
      }
      const message = { jsonrpc: "2.0", method };
      if (params !== undefined) message.params = params;
      if (id !== undefined) message.id = id;
      if (this._binary) return packMessage(message); // Throws TypeError likewise.
      return JSON.stringify(message); // Throws TypeError for cycles and BigInt.
    }

    _sendText(text) {
      const ws = this._ws;
      if (this._state !== States.OPEN || !ws || ws.readyState !== OPEN) return false;
      ws.send(text);
      return true;
    }

    _unqueueableReason() {
      if (this._state === States.CLOSED) return "closed";
      if (this.options.failFast) return "fail-fast";
      if (this._queue.length >= this.options.queueSize) return "queue-full";
      return null;
    }

    _call(method, params, timeout, signal, queueable) {
      return new Promise((resolve, reject) => {
        const id = this._nextId++;
        const text = this._encodeRequest(method, params, id);
        const call = { id, method, text, resolve, reject, timer: null, signal: null, onAbort: null };
        if (signal) {
          if (signal.aborted) {
            reject(signal.reason);
            return;
          }
          call.signal = signal;
          call.onAbort = () => this._settle(call, null, signal.reason);
          signal.addEventListener("abort", call.onAbort);
        }
        if (Number.isFinite(timeout) && timeout > 0) {
          call.timer = setTimeout(
            () => this._settle(call, null, new InvokeTimeoutError(method, timeout)),
            timeout,
          );
        }
        if (this._sendText(text)) {
          this._pending.set(id, call);
          return;
        }
        const reason =
          queueable || this._state === States.CLOSED ? this._unqueueableReason() : "not-queued";
        if (reason) {
          this._settle(call, null, new NotConnectedError(method, reason));
          return;
        }
        this._queue.push({ call });
      });
    }

    /** Settle a call once, wherever it waits (queue or pending), and clean up its timer and signal. */
    _settle(call, result, error) {
      if (call.done) return;
      call.done = true;
      clearTimeout(call.timer);
      if (call.signal) call.signal.removeEventListener("abort", call.onAbort);
      if (this._pending.get(call.id) === call) this._pending.delete(call.id);
      const index = this._queue.findIndex((entry) => entry.call === call);
      if (index !== -1) this._queue.splice(index, 1);
      if (error) call.reject(error);
      else call.resolve(result);
    }

    _flush() {
      while (this._queue.length > 0 && this._state === States.OPEN) {
        const entry = this._queue.shift();
        if (!this._sendText(entry.call ? entry.call.text : entry.text)) {
          this._queue.unshift(entry);
          return;
        }
        if (entry.call) this._pending.set(entry.call.id, entry.call);
      }
    }

    _startHeartbeat(ws) {
      const { heartbeatInterval, heartbeatTimeout } = this.options;
      if (!(Number.isFinite(heartbeatInterval) && heartbeatInterval > 0)) return;
      this._heartbeatTimer = setInterval(() => {
        if (ws !== this._ws || this._pingInFlight) return;
        this._pingInFlight = true;
        this._call("rpc.ping", undefined, heartbeatTimeout, null, false).then(
          () => {
            if (ws === this._ws) this._pingInFlight = false;
          },
          (err) => {
            if (ws !== this._ws) return;
            this._pingInFlight = false;
            if (err instanceof InvokeTimeoutError) this._drop("heartbeat timeout");
          },
        );
      }, heartbeatInterval);
    }

    // --- incoming -------------------------------------------------------------

    _onMessage(ws, event) {
      if (ws !== this._ws) return;
      const text = typeof event.data === "string";
      if (!text && !this._binary) return; // A JSON connection takes text frames only.
      if (text && this._binary) {
        // A MessagePack server never sends text (protocol section 15). A browser may not close
        // with 1002: the socket is dropped as lost (closed 1000 with this reason).
        this._drop("text frame on a MessagePack connection");
        return;
      }
      let message;
      try {
        message = text ? JSON.parse(event.data) : unpackMessage(event.data);
      } catch (err) {
        this._reply(ws, [this._error(null, ErrorCodes.PARSE_ERROR, "Parse error")], false);
        return;
      }
      if (Array.isArray(message)) {
        if (message.length === 0) {
          this._reply(
            ws,
            [this._error(null, ErrorCodes.INVALID_REQUEST, "Invalid Request", "empty batch")],
            false,
          );
          return;
        }
        this._reply(
          ws,
          message.map((item) => this._handleItem(item)),
          true,
        );
      } else {
        this._reply(ws, [this._handleItem(message)], false);
      }
    }

    /** Send the answers (values or Promises; undefined for none) once all are known. */
    _reply(ws, answers, batch) {
      const send = (responses) => {
        const given = responses.filter((r) => r !== undefined);
        if (given.length === 0 || ws !== this._ws || ws.readyState !== OPEN) return;
        if (this._binary) {
          const packed = given.map(packResponse);
          ws.send(batch ? joinPacked(packed) : packed[0]);
          return;
        }
        const texts = given.map(encodeResponse);
        ws.send(batch ? `[${texts.join(",")}]` : texts[0]);
      };
      if (answers.some((a) => a && typeof a.then === "function")) {
        Promise.all(answers).then(send);
      } else {
        send(answers);
      }
    }

    _error(id, code, message, data) {
      return { jsonrpc: "2.0", error: errorObject(code, message, data), id };
    }

    _handleItem(item) {
      if (!isPlainObject(item)) {
        return this._error(null, ErrorCodes.INVALID_REQUEST, "Invalid Request", "expected a JSON object");
      }
      const hasId = "id" in item;
      const id = isValidId(item.id) ? item.id : null;
      if (hasId && !isValidId(item.id)) {
        return this._error(
          null,
          ErrorCodes.INVALID_REQUEST,
          "Invalid Request",
          "id must be a string, a number or null",
        );
      }
      if (item.jsonrpc !== "2.0") {
        return this._error(
          id,
          ErrorCodes.INVALID_REQUEST,
          "Invalid Request",
          'jsonrpc must be exactly "2.0"',
        );
      }
      if ("method" in item) {
        const params = item.params;
        if (
          typeof item.method !== "string" ||
          (params !== undefined && !Array.isArray(params) && !isPlainObject(params))
        ) {
          return this._error(id, ErrorCodes.INVALID_REQUEST, "Invalid Request", "bad method or params");
        }
        // A journaled notification replayed on resume that this client already has.
        if (!hasId && this._isDuplicate(item.offset)) return undefined;
        return this._dispatch(item.method, params, hasId, id);
      }
      if (hasId && "result" in item !== "error" in item) {
        this._handleResponse(item);
        return undefined;
      }
      return this._error(
        id,
        ErrorCodes.INVALID_REQUEST,
        "Invalid Request",
        "neither a request nor a response",
      );
    }

    _handleResponse(item) {
      const call = item.id === null ? undefined : this._pending.get(item.id);
      const error = item.error;
      if (call === undefined) {
        // A late answer (after a timeout) is dropped; an error with id null concerns no call.
        if (item.id === null && isPlainObject(error)) {
          this._emit("error", { error: new RpcError(error.code, error.message, error.data) });
        }
        return;
      }
      if ("error" in item) {
        const e = isPlainObject(error) ? error : {};
        this._settle(
          call,
          null,
          new RpcError(e.code, typeof e.message === "string" ? e.message : "Unknown error", e.data),
        );
      } else {
        this._settle(call, item.result, null);
      }
    }

    _dispatch(method, params, isCall, id) {
      if (method === "rpc.connected" && !isCall) {
        this._onConnected(params);
        return undefined;
      }
      if (method === "rpc.ping") {
        return isCall ? { jsonrpc: "2.0", result: "pong", id } : undefined;
      }
      if (method === "rpc.publication" && !isCall) {
        this._onPublication(params);
        return undefined;
      }
      if (method === "rpc.stream.item" && !isCall) {
        this._onStreamItem(params);
        return undefined;
      }
      if (method === "rpc.stream.credit" && !isCall) {
        const upload = isPlainObject(params) ? this._uploads.get(params.id) : undefined;
        if (upload !== undefined && Number.isInteger(params.n) && params.n > 0) upload.grant(params.n);
        return undefined;
      }
      const handler = this._handlers.get(method);
      if (!handler) {
        return isCall ? this._error(id, ErrorCodes.METHOD_NOT_FOUND, "Method not found", method) : undefined;
      }
      const args = params === undefined ? [] : Array.isArray(params) ? params : [params];
      const onResult = (value) =>
        isCall ? { jsonrpc: "2.0", result: value === undefined ? null : value, id } : undefined;
      const onError = (err) => {
        if (isCall) return { jsonrpc: "2.0", error: errorFromThrown(err), id };
        this._emit("error", { error: err });
        reportError(err);
        return undefined;
      };
      let value;
      try {
        value = handler.apply(this, args);
      } catch (err) {
        return onError(err);
      }
      if (value && typeof value.then === "function") {
        return Promise.resolve(value).then(onResult, onError);
      }
      return onResult(value);
    }
  }

  home.wsmanager = Object.freeze({
    VERSION,
    Client,
    States,
    ErrorCodes,
    CloseCodes,
    WsManagerError,
    RpcError,
    ConnectionLostError,
    NotConnectedError,
    InvokeTimeoutError,
    Subscription,
  });
})(
  typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this,
  // Declared only by the npm package's ES module, before this file's text (clients/js/build.mjs).
  typeof wsmanagerModule === "object" ? wsmanagerModule : undefined,
);
