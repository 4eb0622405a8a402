// The VS Code client of `ssnc lsp`: .ssn files get the compiler's diagnostics, hover,
// completion, navigation, formatting and inlay hints from the server, started from the
// Python that has `ssnc[lsp]` installed. Colours come from syntaxes/ssn.tmLanguage.json.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

/** The Python to run `ssnc lsp` with: the setting, else the Python extension's, else python3. */
async function pythonPath() {
  const configured = vscode.workspace.getConfiguration("ssnc").get("python");
  if (configured) {
    return configured;
  }
  const python = vscode.extensions.getExtension("ms-python.python");
  if (python) {
    try {
      if (!python.isActive) {
        await python.activate();
      }
      const environments = python.exports && python.exports.environments;
      if (environments) {
        const active = environments.getActiveEnvironmentPath();
        const resolved = await environments.resolveEnvironment(active);
        if (resolved && resolved.executable && resolved.executable.uri) {
          return resolved.executable.uri.fsPath;
        }
      }
    } catch (error) {
      console.warn("ssnc: the Python extension gave no interpreter", error);
    }
  }
  return process.platform === "win32" ? "python" : "python3";
}

async function startClient() {
  const python = await pythonPath();
  const serverOptions = {
    command: python,
    args: ["-m", "ssnc.cli", "lsp"],
    transport: TransportKind.stdio,
  };
  const clientOptions = {
    documentSelector: [{ language: "ssn" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.ssn") },
    outputChannelName: "ssnc",
  };
  client = new LanguageClient("ssnc", "ssnc", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `ssnc: could not start \`${python} -m ssnc.cli lsp\` (install \`ssnc[lsp]\` there, ` +
        `or set "ssnc.python"): ${error}`
    );
  }
}

/** Show the server's `ssnc.show` text (IR, PyTorch or Graphviz) beside the spec. */
async function show(what, language) {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "ssn" || !client) {
    vscode.window.showInformationMessage("ssnc: open a .ssn spec first.");
    return;
  }
  const text = await client.sendRequest("workspace/executeCommand", {
    command: "ssnc.show",
    arguments: [editor.document.uri.toString(), what, editor.selection.active.line],
  });
  const document = await vscode.workspace.openTextDocument({ content: text || "", language });
  await vscode.window.showTextDocument(document, {
    viewColumn: vscode.ViewColumn.Beside,
    preview: true,
  });
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("ssnc.showIR", () => show("ir", "plaintext")),
    vscode.commands.registerCommand("ssnc.showTorch", () => show("torch", "python")),
    vscode.commands.registerCommand("ssnc.showPicture", () => show("dot", "dot")),
    vscode.commands.registerCommand("ssnc.restart", async () => {
      if (client) {
        await client.stop();
      }
      await startClient();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("ssnc.python")) {
        await vscode.commands.executeCommand("ssnc.restart");
      }
    })
  );
  await startClient();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
