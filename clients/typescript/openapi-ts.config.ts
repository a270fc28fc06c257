import { defineConfig } from "@hey-api/openapi-ts";

// The document comes from `keel openapi --output openapi.json` (CI writes it first).
export default defineConfig({
  input: "openapi.json",
  output: "src/client",
  plugins: ["@hey-api/client-fetch", "@hey-api/typescript", "@hey-api/sdk"],
});
