/**
 * Types of the wsmanager browser client (wsmanager.js / wsmanager.mjs).
 *
 * As a module: `import { Client } from "./wsmanager.mjs"`. As a classic
 * script: the global `wsmanager` holds the same members.
 */

/** Library version. */
export declare const VERSION: string;

/** JSON-RPC error codes used by wsmanager (docs/protocol.md). */
export declare const ErrorCodes: {
  readonly PARSE_ERROR: -32700;
  readonly INVALID_REQUEST: -32600;
  readonly METHOD_NOT_FOUND: -32601;
  readonly INVALID_PARAMS: -32602;
  readonly INTERNAL_ERROR: -32603;
  readonly SERVER_BUSY: -32000;
  readonly BINARY_NOT_SUPPORTED: -32001;
  readonly RATE_LIMITED: -32002;
  readonly FORBIDDEN: -32003;
  readonly MESSAGE_TOO_LARGE: -32004;
  /** The server's registry or channel layer is unreachable (retry later). */
  readonly UNAVAILABLE: -32005;
  /** rpc.subscribe: no topic pattern of the handler matches the name. */
  readonly UNKNOWN_TOPIC: -32010;
  /** rpc.subscribe: the topic's authorize() refused this socket. */
  readonly TOPIC_NOT_AUTHORIZED: -32011;
  /** rpc.subscribe: this socket has as many subscriptions as the server allows. */
  readonly TOO_MANY_SUBSCRIPTIONS: -32012;
  /** A streaming call: this socket has as many open streams as the server allows. */
  readonly TOO_MANY_STREAMS: -32020;
  /** A stream ended by the client's rpc.cancel. */
  readonly STREAM_CANCELLED: -32021;
};

/** WebSocket close codes with a meaning for reconnection. */
export declare const CloseCodes: {
  readonly NORMAL: 1000;
  readonly GOING_AWAY: 1001;
  readonly UNSUPPORTED_DATA: 1003;
  readonly ABNORMAL: 1006;
  readonly POLICY_VIOLATION: 1008;
  readonly MESSAGE_TOO_BIG: 1009;
  readonly INTERNAL_ERROR: 1011;
  readonly SERVICE_RESTART: 1012;
  readonly TRY_AGAIN_LATER: 1013;
  /** Another connection resumed this session: the client stops (no reconnection). */
  readonly RESUMED_ELSEWHERE: 4409;
};

/** The client's lifecycle states. */
export declare const States: {
  readonly IDLE: "idle";
  readonly CONNECTING: "connecting";
  readonly OPEN: "open";
  readonly RECONNECTING: "reconnecting";
  readonly CLOSED: "closed";
};

/** One of the values of {@link States}. */
export type State = (typeof States)[keyof typeof States];

/** Root of every error this library raises or rejects with. */
export declare class WsManagerError extends Error {}

/** The peer answered a call with a JSON-RPC error object; throw one from a handler to answer with it. */
export declare class RpcError extends WsManagerError {
  /**
   * @param code JSON-RPC error code, e.g. -32602.
   * @param message Short description.
   * @param data Optional extra information.
   */
  constructor(code: number, message: string, data?: unknown);
  /** The JSON-RPC error code (see {@link ErrorCodes}). */
  readonly code: number;
  /** The error's `data` member, or undefined when absent. */
  readonly data: unknown;
}

/** The connection closed while a call was waiting for its answer; the server may or may not have run it. */
export declare class ConnectionLostError extends WsManagerError {
  /** The method that was called. */
  readonly method: string;
  /** The close code that ended the connection (1006 when it was dropped locally). */
  readonly closeCode: number;
  /** The close reason. */
  readonly closeReason: string;
}

/** A call or notification could be neither sent nor queued. */
export declare class NotConnectedError extends WsManagerError {
  /** The method that was called. */
  readonly method: string;
  /** Why: the client is closed, `failFast` is set, the queue is full, or calls are not queued. */
  readonly reason: "closed" | "fail-fast" | "queue-full" | "not-queued";
}

/** No answer arrived within the call's timeout. A late answer is ignored. */
export declare class InvokeTimeoutError extends WsManagerError {
  /** The method that was called. */
  readonly method: string;
  /** The timeout in milliseconds. */
  readonly timeout: number;
}

/** Options of {@link Client}; all optional, defaults in {@link Client.defaults}. */
export interface ClientOptions {
  /** WebSocket subprotocols. Default: none. */
  protocols?: string | string[];
  /**
   * "json" (text frames, the default) or "msgpack": MessagePack in binary frames, with
   * Uint8Array values carried as bytes (docs/protocol.md, section 15). A server that does not
   * accept MessagePack makes the client close with 1008, for good.
   */
  encoding?: "json" | "msgpack";
  /** Default invoke() timeout in ms; 0 or Infinity for none. Default 30000. */
  timeout?: number;
  /** Give up on an attempt that has not opened after this many ms (then retry). Default 10000. */
  connectTimeout?: number;
  /** Reconnect automatically. Default true. */
  reconnect?: boolean;
  /** Delay before the first retry, in ms (before jitter). Default 1000. */
  reconnectDelay?: number;
  /** Cap on the delay between retries, in ms. Default 30000. */
  reconnectMaxDelay?: number;
  /** Growth of the delay per attempt. Default 2. */
  reconnectFactor?: number;
  /** Fraction of the delay taken off at random (0: none, 1: full jitter). Default 0.5. */
  reconnectJitter?: number;
  /** Give up after this many failed attempts in a row. Default Infinity. */
  maxReconnectAttempts?: number;
  /** Replaces the default close-code policy ({@link Client.isFinalCloseCode}). */
  shouldReconnect?: ((close: { code: number; reason: string }) => boolean) | null;
  /** Send rpc.ping this often, in ms; 0 disables the heartbeat. Default 10000. */
  heartbeatInterval?: number;
  /** Drop the connection (and reconnect) when a ping is not answered within this many ms. Default 5000. */
  heartbeatTimeout?: number;
  /** Most calls and notifications kept while not connected. Default 100. */
  queueSize?: number;
  /** Queue invoke() calls made while not connected (notifications are queued regardless). Default true. */
  queueCalls?: boolean;
  /** Reject calls (and throw from notify) at once while not connected, instead of queueing. Default false. */
  failFast?: boolean;
  /**
   * Resume the session after an abrupt drop (1001, 1006, 1011, 1012) when the server offers
   * recovery: same socket id, groups kept, missed notifications replayed once and in order.
   * false: every reconnection is a fresh socket. Default true.
   */
  recover?: boolean;
  /**
   * Where each subscription's position is kept so that a reloaded page subscribes from where it
   * was: "session" (sessionStorage, keyed by the socket's host and path and the topic), false
   * (nowhere: memory only), or a Storage-like object. Default "session".
   */
  positionStorage?: "session" | false | Pick<Storage, "getItem" | "setItem" | "removeItem">;
  /** WebSocket constructor to use instead of the global one. */
  WebSocket?: typeof WebSocket | null;
}

/** A place in a topic's history: publications after it are what a subscriber has not seen. */
export interface TopicPosition {
  /** The offset of the last publication seen; offsets increase per topic within an epoch. */
  readonly offset: number;
  /** The history's epoch; a new one means the history before it is gone. */
  readonly epoch: string;
}

/**
 * One `rpc.publication`, as given to the callback of {@link Client.subscribe}: `T` its data,
 * `E` its event's name (a typed client narrows both per event).
 */
export interface Publication<T = unknown, E extends string = string> {
  /** The topic's name. */
  readonly topic: string;
  /** Its offset in the topic's history. */
  readonly offset: number;
  /** The history's epoch. */
  readonly epoch: string;
  /** What happened, e.g. "created". */
  readonly event: E;
  /** Its data. */
  readonly data: T;
}

/** What {@link SubscribeOptions.onUnrecovered} and the "unrecovered" event say. */
export interface UnrecoveredInfo {
  /** The position the publications after which cannot all be delivered. */
  readonly since: TopicPosition;
  /** The subscription's position now. */
  readonly position: TopicPosition | null;
  /**
   * "history": the server no longer has them (or `since` is of another epoch);
   * "epoch": a publication came from a new epoch.
   */
  readonly reason: "history" | "epoch";
}

/** Options of {@link Client.subscribe}. */
export interface SubscribeOptions {
  /** The position the application's state is current as of; wins over a stored position. */
  since?: TopicPosition | null;
  /** Publications may have been missed: refetch the topic's state. */
  onUnrecovered?: (info: UnrecoveredInfo & { topic: string; subscription: Subscription }) => void;
  /** A resubscription after a reconnection was refused (an RpcError): the subscription ended. */
  onError?: (error: unknown) => void;
  /** Keep the position in the client's `positionStorage`. Default true. */
  persist?: boolean;
}

/** "subscribed": the server accepted (the first time, after each reconnection, after a gap repair). */
export interface SubscribedEvent extends Event {
  /** The topic's latest offset when the server answered. */
  readonly offset: number;
  /** The history's epoch. */
  readonly epoch: string;
  /** True when a position was given and every publication after it is delivered. */
  readonly recovered: boolean;
  /** True after a reconnection. */
  readonly resubscribe: boolean;
  /** The topic's initial state, when the topic declares one. */
  readonly state: unknown;
}

/** "unrecovered": publications may have been missed; refetch. */
export interface UnrecoveredEvent extends Event, UnrecoveredInfo {}

/** "unsubscribed": the subscription ended (error: null after unsubscribe(), else the refusal). */
export interface UnsubscribedEvent extends Event {
  /** Why it ended, or null. */
  readonly error: unknown;
}

/** The events of {@link Subscription}. */
export interface SubscriptionEventMap {
  subscribed: SubscribedEvent;
  unrecovered: UnrecoveredEvent;
  unsubscribed: UnsubscribedEvent;
}

/** One topic a client is subscribed to, made by {@link Client.subscribe}. */
export declare class Subscription<T = unknown> extends EventTarget {
  private constructor();
  /** The topic's name. */
  readonly topic: string;
  /** The position of the last publication delivered (or of the subscribe answer), or null. */
  readonly position: TopicPosition | null;
  /** True while the server has this subscription on the current connection. */
  readonly active: boolean;
  /** True once the subscription ended. */
  readonly closed: boolean;
  /** Publications dropped because their offset had been delivered already. */
  readonly duplicates: number;
  /** The topic's initial state from the latest subscribe answer, if it declares one. */
  readonly state: unknown;
  /** Stop: no more publications, position forgotten, the server told; never rejects. */
  unsubscribe(): Promise<void>;
  /** Listen to a subscription event. */
  addEventListener<K extends keyof SubscriptionEventMap>(
    type: K,
    listener: (this: Subscription<T>, event: SubscriptionEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Stop listening to a subscription event. */
  removeEventListener<K extends keyof SubscriptionEventMap>(
    type: K,
    listener: (this: Subscription<T>, event: SubscriptionEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** Per-call options of {@link Client.invokeWithOptions}. */
export interface InvokeOptions {
  /** Timeout in ms (0 or Infinity: none). Default: the client's `timeout` option. */
  timeout?: number;
  /** Queue this call while not connected (false: reject at once). Default: the client's `queueCalls`. */
  queue?: boolean;
  /** Aborting rejects the call with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link Client.stream} and {@link Client.streamWithOptions}. */
export interface StreamOptions {
  /** Aborting ends the stream (rpc.cancel) and the iteration throws the signal's reason. */
  signal?: AbortSignal;
  /** Items the server may send ahead of what the loop consumed. Default 64; cut to the stream's
   * `max_credit` (announced by its first item). */
  window?: number;
}

/**
 * The options as the last argument of {@link Client.stream}: `client.stream("count", 10, { signal })`.
 * The client takes the last argument for the options only when it is a plain object whose only keys
 * are `signal` and `window`, at least one, with `signal` an AbortSignal or undefined; any other
 * last argument (`{}` included) is sent as a param. So this type is never empty: pass `signal` or
 * `window`, or call {@link Client.streamWithOptions}.
 */
export type TrailingStreamOptions =
  | { signal: AbortSignal | undefined; window?: number }
  | { signal?: AbortSignal | undefined; window: number };

/** "connected": the server sent rpc.connected. */
export interface ConnectedEvent extends Event {
  /** The new socket id. */
  readonly id: string | null;
  /** True when an earlier connection of this client existed. */
  readonly reconnect: boolean;
  /** True when the server resumed the previous session (a "recovered" event follows). */
  readonly recovered: boolean;
}

/** "reconnected": a connection after the first one got its id. */
export interface ReconnectedEvent extends Event {
  /** The new socket id. */
  readonly id: string | null;
  /** The id of the previous connection. */
  readonly previousId: string | null;
  /** True when the server resumed the previous session: `id` equals `previousId`. */
  readonly recovered: boolean;
}

/** "recovered": the server resumed the session after a drop; the missed notifications follow. */
export interface RecoveredEvent extends Event {
  /** The socket id: the same as before the drop. */
  readonly id: string | null;
  /** How many missed notifications (after the client's offset) the server replays. */
  readonly replayed: number;
}

/** Why a resume failed: the server's reason, or "unsupported" when the server ignored the request. */
export type RecoveryFailure = "expired" | "unknown" | "overflow" | "lost" | "refused" | "unsupported";

/** "recoveryfailed": a resume was asked for and the server opened a fresh socket instead. */
export interface RecoveryFailedEvent extends Event {
  /** Why (other strings may come from newer servers). */
  readonly reason: RecoveryFailure | (string & {});
  /** The id of the session that could not be resumed. */
  readonly previousId: string | null;
  /** The new socket's id. Groups, state and messages of the old one are gone: refresh them. */
  readonly id: string | null;
}

/** "close": an open connection closed, or the client gave up or was closed. */
export interface ClientCloseEvent extends Event {
  /** The close code (1006 for a connection dropped without a close frame or by the heartbeat). */
  readonly code: number;
  /** The close reason ("heartbeat timeout", "connect timeout" for local drops). */
  readonly reason: string;
  /** Whether the closing handshake completed. */
  readonly wasClean: boolean;
  /** Whether a reconnection follows. */
  readonly willReconnect: boolean;
}

/** "reconnecting": the next attempt is scheduled. */
export interface ReconnectingEvent extends Event {
  /** 1 for the first retry after a loss. */
  readonly attempt: number;
  /** Milliseconds until the attempt. */
  readonly delay: number;
  /** The close code that caused the retry. */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
}

/** "statechange": {@link Client.state} changed. */
export interface StateChangeEvent extends Event {
  /** The new state. */
  readonly state: State;
  /** The state before. */
  readonly previous: State;
}

/** "error": a notification handler threw, or the server sent an error not tied to a call. */
export interface ClientErrorEvent extends Event {
  /** What was thrown, or the server's RpcError. */
  readonly error: unknown;
}

/** The events of {@link Client}. */
export interface ClientEventMap {
  open: Event;
  connected: ConnectedEvent;
  reconnected: ReconnectedEvent;
  recovered: RecoveredEvent;
  recoveryfailed: RecoveryFailedEvent;
  close: ClientCloseEvent;
  reconnecting: ReconnectingEvent;
  statechange: StateChangeEvent;
  error: ClientErrorEvent;
}

/** A JSON-RPC 2.0 peer over one WebSocket that reconnects by itself. */
export declare class Client extends EventTarget {
  /**
   * @param url ws:// or wss:// URL, or a path on this page's host; a function is called before each attempt.
   * @param options See {@link ClientOptions}.
   */
  constructor(url: string | (() => string), options?: ClientOptions);
  /** The default options. */
  static readonly defaults: Readonly<Required<ClientOptions>>;
  /** Whether the default policy stops reconnecting after this close code (1000, 1003, 1008, 4400-4499 such as 4409). */
  static isFinalCloseCode(code: number): boolean;
  /** The URL (or URL factory) given to the constructor. */
  readonly url: string | (() => string);
  /** The effective options. */
  readonly options: Readonly<Required<ClientOptions>>;
  /** The socket id from rpc.connected, or null while not connected. */
  readonly id: string | null;
  /** The lifecycle state. */
  readonly state: State;
  /** True when a connection is open. */
  readonly connected: boolean;
  /** How many calls and notifications wait for a connection. */
  readonly queued: number;
  /** The subscriptions of this client, by topic (a copy). */
  readonly subscriptions: Map<string, Subscription>;
  /** How many publications arrived for a topic this client is not subscribed to (dropped). */
  readonly ignoredPublications: number;
  /** Open the connection; resolves with the socket id at the next rpc.connected. */
  connect(): Promise<string>;
  /**
   * Close for good (no reconnection); connect() starts again. On an open socket it first says
   * `rpc.close` (with the code), so that the server releases the session at once, on every server.
   */
  close(code?: number, reason?: string): void;
  /** Call a server method with positional params. */
  invoke<T = unknown>(method: string, ...params: unknown[]): Promise<T>;
  /** Call a server method with explicit params (array or object) and per-call options. */
  invokeWithOptions<T = unknown>(
    method: string,
    params?: unknown[] | Record<string, unknown>,
    options?: InvokeOptions,
  ): Promise<T>;
  /**
   * Call a streaming method and iterate over its items in order; the last argument is the
   * options when it is an object with only `signal` and/or `window`. Leaving the loop early or
   * aborting sends rpc.cancel. Throws RpcError, ConnectionLostError, NotConnectedError.
   */
  stream<T = unknown>(
    method: string,
    ...args: [...params: unknown[], options: TrailingStreamOptions]
  ): AsyncGenerator<T, void, undefined>;
  /** Call a streaming method with positional params only (see the overload above for the options rule). */
  stream<T = unknown>(method: string, ...params: unknown[]): AsyncGenerator<T, void, undefined>;
  /** Call a streaming method with explicit params (array or object) and options. */
  streamWithOptions<T = unknown>(
    method: string,
    params?: unknown[] | Record<string, unknown>,
    options?: StreamOptions,
  ): AsyncGenerator<T, void, undefined>;
  /**
   * Call a method that reads an upload and send it `items`, paced by the server's credit; resolves
   * with its result. Aborting the signal sends rpc.cancel.
   */
  upload<T = unknown>(
    method: string,
    items: Iterable<unknown> | AsyncIterable<unknown>,
    params?: unknown[] | Record<string, unknown>,
    options?: { signal?: AbortSignal },
  ): Promise<T>;
  /** Send a notification; throws NotConnectedError when it can be neither sent nor queued. */
  notify(method: string, ...params: unknown[]): void;
  /** Serve a method the server calls or notifies; returns a function removing the handler. */
  on(method: string, handler: ((...params: any[]) => unknown) | null): () => void;
  /** Stop serving a method. */
  off(method: string): void;
  /**
   * Subscribe to a topic; publications reach `onPublication` once and in offset order, and the
   * subscription is renewed from its position after every reconnection and page reload.
   * Rejects with RpcError -32010 (unknown topic), -32011 (not authorized), -32012 (too many
   * subscriptions) or -32602 (bad params), InvokeTimeoutError, or NotConnectedError.
   */
  subscribe<T = unknown, E extends string = string>(
    topic: string,
    onPublication: (publication: Publication<T, E>, subscription: Subscription<T>) => void,
    options?: SubscribeOptions,
  ): Promise<Subscription<T>>;
  /** Listen to a client event. */
  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, event: ClientEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Stop listening to a client event. */
  removeEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, event: ClientEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** Everything above, as one object (the global `wsmanager` of the classic script). */
declare const wsmanager: {
  readonly VERSION: typeof VERSION;
  readonly Client: typeof Client;
  readonly States: typeof States;
  readonly ErrorCodes: typeof ErrorCodes;
  readonly CloseCodes: typeof CloseCodes;
  readonly WsManagerError: typeof WsManagerError;
  readonly RpcError: typeof RpcError;
  readonly ConnectionLostError: typeof ConnectionLostError;
  readonly NotConnectedError: typeof NotConnectedError;
  readonly InvokeTimeoutError: typeof InvokeTimeoutError;
  readonly Subscription: typeof Subscription;
};
export default wsmanager;

declare global {
  /** The client library, defined by loading wsmanager.js as a classic script. */
  // eslint-disable-next-line no-var
  var wsmanager: typeof import("./wsmanager.js").default;
}
