// Generates generated/schema.d.ts from the committed OpenAPI document with
// openapi-typescript, binary bodies typed as Blob (its documented transform:
// the CLI types them as string, which no upload or download can be).
import { writeFileSync, mkdirSync } from "node:fs";
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
mkdirSync(new URL("generated/", import.meta.url), { recursive: true });
writeFileSync(new URL("generated/schema.d.ts", import.meta.url), astToString(ast));
console.log("generated/schema.d.ts");
