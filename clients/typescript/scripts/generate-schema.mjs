// Writes src/schema.d.ts (or OUT) from authgate's OpenAPI document with openapi-typescript.
//
//   node scripts/generate-schema.mjs SPEC.json [OUT.d.ts]
//
// `make client` runs it on what `authgate openapi` prints; tests/test_client_kit.py runs it into a
// temporary directory and compares the result with the checked-in file (the drift test).
import { readFileSync, writeFileSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";

const [spec, out = "src/schema.d.ts"] = process.argv.slice(2);
if (!spec) {
  console.error("usage: node scripts/generate-schema.mjs SPEC.json [OUT.d.ts]");
  process.exit(2);
}

const HEADER = `/**
 * Types of authgate's HTTP API, generated from its /openapi.json by openapi-typescript.
 * Do not edit: run \`make client\` at the repository root after changing the API.
 */

`;

const ast = await openapiTS(JSON.parse(readFileSync(spec, "utf8")));
writeFileSync(out, HEADER + astToString(ast));
