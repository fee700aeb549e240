#!/usr/bin/env node
/**
 * Generate the TypeScript side of the REST contract from `server_ext/openapi.yaml`:
 *
 * - `labextension/src/generated/contract.ts`: the schemas, paths and operations as types
 *   (openapi-typescript); `api.ts` aliases them, so a contract change the TypeScript does not
 *   follow fails `tsc`.
 * - `labextension/src/generated/version.ts`: `API_VERSION`, the contract's `info.version`
 *   (the server's `server_ext/base.py` API_VERSION; a Python test checks they agree).
 *
 * Both files are build output (git-ignored). Run by `jlpm build:types`, which every build,
 * watch and unit-test script runs first.
 *
 *   node scripts/contract.mjs [openapi.yaml] [out dir]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import openapiTS, { astToString } from 'openapi-typescript';
import { parse } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = resolve(
  process.argv[2] ?? resolve(root, 'server_ext/openapi.yaml')
);
const outDir = resolve(
  process.argv[3] ?? resolve(root, 'labextension/src/generated')
);

const HEADER = `/**
 * GENERATED from ${relative(root, source).split('\\').join('/')} by scripts/contract.mjs (jlpm build:types).
 * Do not edit: change the contract and rebuild.
 */
`;

function fail(message) {
  console.error(`scripts/contract.mjs: ${message}`);
  process.exit(1);
}

let text;
try {
  text = readFileSync(source, 'utf8');
} catch (error) {
  fail(`cannot read the contract: ${error.message}`);
}

const spec = parse(text);
const version = String(spec?.info?.version ?? '');
if (!/^[1-9]\d*$/.test(version)) {
  fail(
    `info.version of ${source} must be the contract's version, a whole number (got "${version}")`
  );
}

const ast = await openapiTS(text, {
  // A request field with a default is still optional for the client to send.
  defaultNonNullable: false
});

mkdirSync(outDir, { recursive: true });
writeFileSync(resolve(outDir, 'contract.ts'), HEADER + astToString(ast));
writeFileSync(
  resolve(outDir, 'version.ts'),
  `${HEADER}
/** Version of the REST contract this frontend speaks (\`api\` in \`GET /kfnb/api/version\`). */
export const API_VERSION = ${Number(version)};
`
);
