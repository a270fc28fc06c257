// A customer's first session through the generated client, against a live Keel: register,
// sign in, read the account back, and get the error body of a failed sign-in. Only what every
// project has (auth and users); each optional feature's own flow lives in
// src/features/<name>/smoke.ts. Every call is typed by the generated code, so a schema change
// that breaks clients fails `tsc` first and this script second.
// Run by tests/test_typescript_client.py.
import { authLogin, authRegister, usersReadMe } from "./client/sdk.gen.js";
import { check, runSmoke, signIn } from "./support.js";

runSmoke("typescript client smoke", async () => {
  const suffix = Date.now().toString(36);
  const email = `ts-${suffix}@example.com`;
  const password = "correct horse battery staple";
  const { data: account } = await authRegister({
    body: { email, password, full_name: "Type Script" },
    throwOnError: true,
  });
  check(account.email === email, "registered email");
  const token = await signIn(email, password);
  const { data: me } = await usersReadMe({ auth: token, throwOnError: true });
  check(me.id === account.id, "the token is the new account's");

  const { error, response } = await authLogin({
    body: { email, password: "not the password at all" },
  });
  check(response.status === 401, "a wrong password is refused");
  check(error !== undefined && "error" in error, "the refusal has the error body");
});
