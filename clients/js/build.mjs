// Builds the npm package's dist/ from the browser client that Django serves.
//
// The one source is wsmanager/static/wsmanager/ in this repository: wsmanager.js
// (a classic script) and wsmanager.d.ts (its types). Nothing in dist/ is
// committed; `npm pack` and `npm publish` run this script first (prepack).
//
//   dist/wsmanager.js    an ES module: a fixed prologue, wsmanager.js byte for
//                        byte, then the exports. The prologue declares the
//                        object the classic script puts the library into
//                        (`wsmanagerModule`), so the module sets no global.
//   dist/wsmanager.d.ts  wsmanager.d.ts byte for byte, without its final
//                        `declare global` block (the module sets no global).
//
// The build fails, rather than guessing, when the source no longer has the
// shape it expects, and it imports the module it wrote to check its exports.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(HERE, "..", "..", "wsmanager", "static", "wsmanager");
const DIST = join(HERE, "dist");

// Markers of the source this build relies on; each must occur exactly once.
const HOOK = 'typeof wsmanagerModule === "object" ? wsmanagerModule : undefined';
const LIBRARY = /\n {2}home\.wsmanager = Object\.freeze\(\{\n((?: {4}[A-Za-z_$][\w$]*,\n)+) {2}\}\);\n/g;
const GLOBAL_BLOCK = "\ndeclare global {\n";

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

function once(text, needle, what) {
  const count = text.split(needle).length - 1;
  if (count !== 1) fail(`expected ${what} once in the source, found it ${count} times`);
}

/** The names the classic script puts on its library object, in order. */
function exportNames(script) {
  const matches = [...script.matchAll(LIBRARY)];
  if (matches.length !== 1) {
    fail(`expected one "home.wsmanager = Object.freeze({ ... })" in wsmanager.js, found ${matches.length}`);
  }
  return matches[0][1].trim().split(/,\s*/).filter(Boolean);
}

/** The ES module: the prologue, the classic script unchanged, the exports. */
function moduleText(script, names) {
  const prologue =
    "// wsmanager-client: the browser client of wsmanager as an ES module. Below is\n" +
    "// wsmanager/static/wsmanager/wsmanager.js unchanged (the file Django serves);\n" +
    "// it puts the library into `wsmanagerModule` instead of a global.\n" +
    "const wsmanagerModule = {};\n";
  const epilogue =
    "\nconst wsmanager = wsmanagerModule.wsmanager;\n" +
    `export const { ${names.join(", ")} } = wsmanager;\n` +
    "export default wsmanager;\n";
  return prologue + script + epilogue;
}

/** The declarations: wsmanager.d.ts without its final `declare global` block. */
function typesText(types) {
  once(types, GLOBAL_BLOCK, "`declare global {`");
  const cut = types.indexOf(GLOBAL_BLOCK);
  const block = types.slice(cut + 1);
  // The block must be the file's last statement: indented lines, then one closing brace.
  if (!/^declare global \{\n(?:(?: {2}.*)?\n)*\}\n$/.test(block)) {
    fail("`declare global { ... }` must be the last block of wsmanager.d.ts");
  }
  const prologue =
    "// wsmanager-client: the types of wsmanager/static/wsmanager/wsmanager.d.ts,\n" +
    "// without its `declare global` (this module defines no global `wsmanager`).\n";
  return prologue + types.slice(0, cut).replace(/\n+$/, "\n");
}

/** Write by renaming a finished file into place, so that two builds at once (parallel test
 * workers packing) never leave a reader a half-written file. Only the files named in
 * package.json's `files` are packed, so nothing else in dist/ needs removing. */
function writeAtomically(path, text) {
  const partial = `${path}.${process.pid}.partial`;
  writeFileSync(partial, text);
  renameSync(partial, path);
}

async function main() {
  const script = readFileSync(join(SOURCE, "wsmanager.js"), "utf8");
  const types = readFileSync(join(SOURCE, "wsmanager.d.ts"), "utf8");
  once(script, HOOK, `the hook \`${HOOK}\``);
  const names = exportNames(script);

  mkdirSync(DIST, { recursive: true });
  const modulePath = join(DIST, "wsmanager.js");
  writeAtomically(modulePath, moduleText(script, names));
  writeAtomically(join(DIST, "wsmanager.d.ts"), typesText(types));

  // Check what was written: it loads, sets no global, and exports each name of the library.
  const mod = await import(pathToFileURL(modulePath).href);
  if ("wsmanager" in globalThis) fail("the module set a global `wsmanager`");
  const members = Object.keys(mod.default);
  if (members.join() !== names.join()) fail(`default export has ${members}, expected ${names}`);
  for (const name of names) {
    if (mod[name] !== mod.default[name]) fail(`export ${name} is not the library's ${name}`);
  }
  console.log(`build.mjs: dist/wsmanager.js (${names.length} exports) and dist/wsmanager.d.ts`);
}

await main();
