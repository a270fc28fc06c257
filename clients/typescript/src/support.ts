// What every smoke script needs: its settings from the environment, a check that fails the
// run, and a signed-in token. The scripts share it so that a feature's script (under
// src/features/<name>/, which leaves a generated project with the feature) stays short.
import { client } from "./client/client.gen.js";
import { authLogin } from "./client/sdk.gen.js";

export function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`smoke check failed: ${what}`);
}

export async function signIn(email: string, password: string): Promise<string> {
  const { data } = await authLogin({ body: { email, password }, throwOnError: true });
  return data.access_token;
}

// Points the client at KEEL_URL, runs `body` and reports: "<name>: ok" or exit code 1.
export function runSmoke(name: string, body: () => Promise<void>): void {
  client.setConfig({ baseUrl: need("KEEL_URL") });
  body()
    .then(() => console.log(`${name}: ok`))
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
