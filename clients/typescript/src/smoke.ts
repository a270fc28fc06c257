// A customer's first session through the generated client, against a live Keel:
// an admin stocks a product, a customer registers, signs in, finds it, orders it and pays.
// Every call is typed by the generated code, so a schema change that breaks clients fails
// `tsc` first and this script second. Run by tests/test_typescript_client.py.
import { client } from "./client/client.gen.js";
import {
  authLogin,
  authRegister,
  catalogCreateProduct,
  catalogListProducts,
  ordersCreateOrder,
  ordersPayOrder,
  usersReadMe,
} from "./client/sdk.gen.js";

// The sandbox gateway's test number that always succeeds.
const TEST_CARD = {
  number: "4242 4242 4242 4242",
  exp_month: 12,
  exp_year: 2099,
  cvc: "123",
  holder: "Type Script",
};

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`smoke check failed: ${what}`);
}

async function signIn(email: string, password: string): Promise<string> {
  const { data } = await authLogin({ body: { email, password }, throwOnError: true });
  return data.access_token;
}

async function main(): Promise<void> {
  client.setConfig({ baseUrl: need("KEEL_URL") });
  const suffix = Date.now().toString(36);

  const admin = await signIn(need("ADMIN_EMAIL"), need("ADMIN_PASSWORD"));
  const { data: product } = await catalogCreateProduct({
    auth: admin,
    body: {
      sku: `TS-${suffix}`,
      name: "Typed kettle",
      price: { amount: 2599, currency: "EUR" },
      stock: 3,
    },
    throwOnError: true,
  });

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

  const { data: page } = await catalogListProducts({
    query: { q: "Typed kettle", page_size: 20 },
    throwOnError: true,
  });
  check(page.items.some((item) => item.id === product.id), "the product is listed");

  const { data: order } = await ordersCreateOrder({
    auth: token,
    body: { items: [{ product_id: product.id, quantity: 2 }] },
    throwOnError: true,
  });
  check(order.status === "pending", "a new order is pending");
  check(order.total.amount === 5198, "the total is computed by the server");

  const { data: paid } = await ordersPayOrder({
    auth: token,
    path: { order_id: order.id },
    headers: { "idempotency-key": `ts-pay-${suffix}` },
    body: { card: TEST_CARD },
    throwOnError: true,
  });
  check(paid.status === "paid", "the order is paid");

  const { error, response } = await ordersPayOrder({
    auth: token,
    path: { order_id: order.id },
    headers: { "idempotency-key": `ts-pay-again-${suffix}` },
    body: { card: TEST_CARD },
  });
  check(response.status === 409, "paying twice is a conflict");
  check(error !== undefined && "error" in error, "the conflict has the error body");
  console.log("typescript client smoke: ok");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
