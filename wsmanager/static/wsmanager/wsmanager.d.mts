/** Types of wsmanager.mjs: the same as wsmanager.d.ts. */
export * from "./wsmanager.js";
export { default } from "./wsmanager.js";
