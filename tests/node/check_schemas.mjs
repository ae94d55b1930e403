// The replay/1 schemas as an ECMAScript validator sees them: ajv (draft 2020-12, strict mode)
// compiles every schema of <spec>/schemas and judges every example of <spec>/examples.
// Prints one line per example judged otherwise than its folder says; exits 1 if any is.
// Usage: node check_schemas.mjs <spec dir>
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";

const spec = process.argv[2];
const read = (path) => JSON.parse(readFileSync(path, "utf8"));
const jsonFiles = (dir) => readdirSync(dir).filter((name) => name.endsWith(".json")).sort();

const ajv = new Ajv2020({ strict: true });
const names = jsonFiles(join(spec, "schemas")).map((file) => file.slice(0, -".json".length));
for (const name of names) ajv.addSchema(read(join(spec, "schemas", `${name}.json`)));

let judged = 0;
let wrong = 0;
for (const name of names.filter((n) => n !== "common")) {
  const validate = ajv.getSchema(`urn:socketio-replay:replay-1:${name}`); // compiles: strict
  for (const kind of ["valid", "invalid"]) {
    const dir = join(spec, "examples", name, kind);
    for (const file of jsonFiles(dir)) {
      judged += 1;
      if (validate(read(join(dir, file))) !== (kind === "valid")) {
        wrong += 1;
        console.log(`${name}/${kind}/${file}: ${JSON.stringify(validate.errors)}`);
      }
    }
  }
}
console.log(`ajv: ${judged} examples, ${wrong} judged otherwise`);
process.exit(wrong === 0 ? 0 : 1);
