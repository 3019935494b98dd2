// Generates TypeScript types from the committed OpenAPI document with
// openapi-typescript, binary bodies typed as Blob (its documented transform:
// the CLI types them as string, which no upload or download can be).
// Writes generated/schema.d.ts here, or the file named as its argument (the
// console's types are made by this same script).
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const NULL = ts.factory.createLiteralTypeNode(ts.factory.createNull());

const document = new URL("../../openapi/openapi.json", import.meta.url);
const ast = await openapiTS(document, {
  transform(schemaObject) {
    if (schemaObject.format === "binary") {
      const nullable = Array.isArray(schemaObject.type) && schemaObject.type.includes("null");
      return nullable ? ts.factory.createUnionTypeNode([BLOB, NULL]) : BLOB;
    }
    return undefined;
  },
});
const out = process.argv[2]
  ? resolve(process.argv[2])
  : fileURLToPath(new URL("generated/schema.d.ts", import.meta.url));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, astToString(ast));
console.log(out);
