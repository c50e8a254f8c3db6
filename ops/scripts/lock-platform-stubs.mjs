#!/usr/bin/env node
// The npm registry reachable from our machines lacks some other-platform optional packages
// (darwin/win32/android builds of biome, anvil, msgpackr-extract). npm then writes a lockfile
// without their entries, and `npm ci` refuses it ("Missing: … from lock file"). This adds the entry
// a normal lockfile would have (name, version, optional, os, cpu), so `npm ci` skips them by
// platform as usual. Run after `npm install` changes dependencies: node ops/scripts/lock-platform-stubs.mjs
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const OS = ["darwin", "win32", "linux", "android", "freebsd", "openbsd", "sunos", "aix", "netbsd"];
const CPU = { amd64: "x64", x64: "x64", arm64: "arm64", arm: "arm", ia32: "ia32" };
let added = 0;
for (const [key, pkg] of Object.entries(lock.packages)) {
  for (const [name, range] of Object.entries(pkg.optionalDependencies ?? {})) {
    const base = key === "" ? "" : `${key}/`;
    const nested = `${base}node_modules/${name}`;
    const top = `node_modules/${name}`;
    if (lock.packages[nested] || lock.packages[top]) continue;
    const parts = name.split("/").pop().split("-");
    const os = parts.find((p) => OS.includes(p));
    const cpu = parts.map((p) => CPU[p]).find(Boolean);
    if (!os || !cpu) continue; // not a platform build: leave it to npm
    const entry = { version: range.replace(/^[\^~=]/, ""), optional: true, os: [os], cpu: [cpu] };
    if (parts.includes("musl")) entry.libc = ["musl"];
    lock.packages[top] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) =>
    a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0,
  ),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platform-stubs: added ${added} platform entries`);
