// prepack: copy the spec's schemas into the package, so an installed package carries the
// exact files the spec publishes. `--clean` (postpack) removes the copy again.
import { cpSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const target = fileURLToPath(new URL('../schemas/', import.meta.url));
const source = fileURLToPath(new URL('../../../spec/schemas/', import.meta.url));
rmSync(target, { recursive: true, force: true });
if (!process.argv.includes('--clean')) cpSync(source, target, { recursive: true, filter: (p) => !p.endsWith('.md') });
