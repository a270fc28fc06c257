// The orders feature through the generated client, against a live Keel: an admin stocks a
// product, a customer orders it and pays, and paying twice is a conflict with the error body.
// It lives under src/features/orders/ so that it leaves a generated project with the feature.
// Run by tests/features/orders/test_typescript_client_orders.py.
import {
  authRegister,
  catalogCreateProduct,
  catalogListProducts,
  ordersCreateOrder,
  ordersPayOrder,
} from "../../client/sdk.gen.js";
import { check, need, runSmoke, signIn } from "../../support.js";

// The sandbox gateway's test number that always succeeds.
const TEST_CARD = {
  number: "4242 4242 4242 4242",
  exp_month: 12,
  exp_year: 2099,
  cvc: "123",
  holder: "Type Script",
};

runSmoke("typescript orders smoke", async () => {
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

  const email = `ts-order-${suffix}@example.com`;
  const password = "correct horse battery staple";
  await authRegister({ body: { email, password, full_name: "Type Script" }, throwOnError: true });
  const token = await signIn(email, password);

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
});
