#!/usr/bin/env node
// Prints the path of a native binary that npm installed for this machine (or for the platform
// asked with `npm install --os=... --cpu=...`), found through the packages themselves.
//
// Packages that ship native binaries (restate-server, the restate CLI, restatectl, Node) list one
// optional dependency per platform, each declaring its `os` and `cpu`; npm installs only the one
// that matches. This finds, among the optional dependencies that PACKAGE declares, the one npm
// installed (Node's own module resolution from DIR), and prints its binary NAME: the package's
// `bin` entry for NAME, else `bin/NAME`. No platform name is written anywhere.
//
// Usage: node scripts/npm-platform-bin.cjs DIR PACKAGE NAME
//   DIR      where node_modules was installed (npm's --prefix, or the project's directory)
//   PACKAGE  the package declaring the platform packages, or "." for DIR's own package.json
//   NAME     the binary, e.g. restate-server
"use strict";
const fs = require("node:fs");
const path = require("node:path");

function fail(message) {
  process.stderr.write(`npm-platform-bin: ${message}\n`);
  process.exit(1);
}

function resolveFrom(dir, request) {
  try {
    return require.resolve(request, { paths: [dir] });
  } catch {
    return null;
  }
}

const [dirArg, pkg, name] = process.argv.slice(2);
if (!dirArg || !pkg || !name) fail("usage: npm-platform-bin.cjs DIR PACKAGE NAME");
const dir = path.resolve(dirArg);
const manifestPath =
  pkg === "." ? path.join(dir, "package.json") : resolveFrom(dir, `${pkg}/package.json`);
if (!manifestPath || !fs.existsSync(manifestPath)) fail(`${pkg} is not installed in ${dir}`);
const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
const candidates = Object.keys(manifest.optionalDependencies || {});
if (candidates.length === 0) fail(`${manifest.name} declares no platform packages`);

// Resolved from the declaring package's directory, as its own code would require them.
const from = path.dirname(manifestPath);
const installed = candidates
  .map((candidate) => [candidate, resolveFrom(from, `${candidate}/package.json`)])
  .filter(([, found]) => found !== null);
if (installed.length !== 1) {
  fail(
    `expected npm to have installed exactly one of ${candidates.join(", ")} for ` +
      `${manifest.name}, found ${installed.length ? installed.map(([c]) => c).join(", ") : "none"} ` +
      `(is this platform one of them? npm skips the others)`,
  );
}
const [chosen, chosenManifestPath] = installed[0];
const chosenManifest = JSON.parse(fs.readFileSync(chosenManifestPath, "utf8"));
const bin = chosenManifest.bin;
const relative = (typeof bin === "object" && bin !== null && bin[name]) || path.join("bin", name);
const binary = path.join(path.dirname(chosenManifestPath), relative);
if (!fs.existsSync(binary)) fail(`${chosen} has no ${relative}`);
process.stdout.write(`${binary}\n`);
