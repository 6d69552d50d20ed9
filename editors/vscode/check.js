// `npm run check`: the manifest, grammar and language configuration parse, the client
// library resolves, and the grammar's patterns compile as JavaScript regular expressions
// (VS Code's TextMate engine, Oniguruma, accepts a superset of these).
const fs = require("fs");
const path = require("path");
const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "package.json"), "utf8"));
JSON.parse(fs.readFileSync(path.join(__dirname, "language-configuration.json"), "utf8"));
const grammarPath = path.join(__dirname, pkg.contributes.grammars[0].path);
const grammar = JSON.parse(fs.readFileSync(grammarPath, "utf8"));
require.resolve("vscode-languageclient/node");
let n = 0;
(function walk(node) {
  if (Array.isArray(node)) return node.forEach(walk);
  if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if ((k === "match" || k === "begin" || k === "end") && typeof v === "string") {
        new RegExp(v);
        n += 1;
      } else walk(v);
    }
  }
})(grammar);
console.log(`ok: ${pkg.name} ${pkg.version}, ${n} grammar patterns`);
