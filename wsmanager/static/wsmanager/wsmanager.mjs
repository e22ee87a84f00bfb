/**
 * ES module entry point of the wsmanager browser client.
 *
 * `import { Client } from "/static/wsmanager/wsmanager.mjs"`. It runs
 * wsmanager.js (which defines the global `wsmanager`) and re-exports it, so a
 * page that also loads wsmanager.js as a classic script shares one copy.
 */
import "./wsmanager.js";

const lib = globalThis.wsmanager;

export const {
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
} = lib;

export default lib;
