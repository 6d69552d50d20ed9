// Starts `uhc lsp` for `.uh` files. Everything the editor shows comes from the server;
// nothing is fetched at run time.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("uhc").get("path") || "uhc";
  client = new LanguageClient(
    "uhc",
    "uhc",
    { command, args: ["lsp"] },
    {
      documentSelector: [{ scheme: "file", language: "uh" }],
      // Files a document `use`s may change outside the editor: the server re-checks
      // their dependants.
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.uh") },
    }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
