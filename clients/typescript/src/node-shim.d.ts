// The one Node.js module the client uses (to read an API key file),
// declared here so that it compiles without @types/node.
declare module "node:fs/promises" {
  export function readFile(path: string, encoding: "utf8"): Promise<string>;
}
