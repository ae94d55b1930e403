/**
 * The replay/1 JSON Schemas, compiled once with ajv (draft 2020-12, strict). They are read
 * from the package's own `schemas/` (bundled at `npm pack`) or, in a checkout, from the
 * spec's `spec/schemas`: never copied by hand.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const PREFIX = 'urn:socketio-replay:replay-1:';

/** The directories looked in, in order. */
export const SCHEMA_DIRS = [
  fileURLToPath(new URL('../../schemas/', import.meta.url)),
  fileURLToPath(new URL('../../../../spec/schemas/', import.meta.url)),
];

/** @returns {string} the first directory that holds the schemas */
export function schemaDir() {
  const dir = SCHEMA_DIRS.find((d) => existsSync(`${d}common.json`));
  if (!dir) throw new Error(`replay/1 schemas not found in ${SCHEMA_DIRS.join(' or ')}`);
  return dir;
}

/**
 * @typedef {(name: string, value: unknown) => boolean} Validate
 *   `name` is a schema's file name without `.json` (`subscribe-request`).
 */

/** @returns {Validate} */
export function loadValidator(dir = schemaDir()) {
  const ajv = new Ajv2020({ strict: true, allErrors: false });
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    ajv.addSchema(JSON.parse(readFileSync(`${dir}${file}`, 'utf8')));
  }
  /** @type {Map<string, import('ajv').ValidateFunction>} */
  const compiled = new Map();
  return (name, value) => {
    let fn = compiled.get(name);
    if (!fn) {
      fn = ajv.getSchema(PREFIX + name);
      if (!fn) throw new Error(`no schema ${name}`);
      compiled.set(name, fn);
    }
    return fn(value);
  };
}
