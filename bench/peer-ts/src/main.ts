/*
 * The reference for the benchmark: the four basic-concepts examples written with Restate's
 * TypeScript SDK, plus a no-op service (the server's own ceiling). Same handlers and JSON shapes
 * as the Python services; names end in `Ts` so both sets register on one Restate server.
 *
 *   EXAMPLE=greeter|subscriptions|signup|blocks|noop PORT=9090 PROTOCOL=h2|h1 node dist/main.mjs
 *
 * PROTOCOL=h2 serves h2c (bidirectional streaming, Restate's default); PROTOCOL=h1 serves
 * HTTP/1.1 request/response (register with `use_http_11: true`). GET /readyz answers "ready";
 * the building-blocks process also serves GET /awakeables ({invocationId: awakeableId}).
 * Every real stub execution writes one JSON log line, as the Python stubs do.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as restate from "@restatedev/restate-sdk";

const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const failureProbabilities: Record<string, number> = JSON.parse(
  env("FAILURE_PROBABILITIES", "{}"),
);

function stub<A extends unknown[], R>(
  step: string,
  probability: number,
  fn: (...args: A) => R,
): (...args: A) => R {
  return (...args: A): R => {
    const p = failureProbabilities[step] ?? probability;
    if (Math.random() < p) {
      process.stderr.write(JSON.stringify({ level: "WARNING", message: "injected failure", step }) + "\n");
      throw new Error(`${step} failed (injected, probability ${p})`);
    }
    const result = fn(...args);
    process.stderr.write(
      JSON.stringify({
        time: new Date().toISOString(),
        level: "INFO",
        message: "stub executed",
        step,
        stub_args: args,
        result,
      }) + "\n",
    );
    return result;
  };
}

// 2. Virtual objects.
const greeterObject = restate.object({
  name: "GreeterObjectTs",
  handlers: {
    greet: async (ctx: restate.ObjectContext, greeting: string): Promise<string> => {
      const count = ((await ctx.get<number>("count")) ?? 0) + 1;
      ctx.set("count", count);
      return `${greeting} ${ctx.key} for the ${count}-th time.`;
    },
    ungreet: async (ctx: restate.ObjectContext): Promise<string> => {
      let count = (await ctx.get<number>("count")) ?? 0;
      if (count > 0) count -= 1;
      ctx.set("count", count);
      return `Dear ${ctx.key}, taking one greeting back: ${count}.`;
    },
  },
});

// 0. Durable execution.
type SubscriptionRequest = { userId: string; creditCard: string; subscriptions: string[] };
const createRecurringPayment = stub(
  "create_recurring_payment", 0.5,
  (_creditCard: string, _paymentId: string): string => `payment-ref-${crypto.randomUUID()}`,
);
const createSubscription = stub(
  "create_subscription", 0.3,
  (_userId: string, _subscription: string, _paymentRef: string): string => "SUCCESS",
);
const subscriptionService = restate.service({
  name: "SubscriptionServiceTs",
  handlers: {
    add: async (ctx: restate.Context, req: SubscriptionRequest): Promise<void> => {
      const paymentId = ctx.rand.uuidv4();
      const paymentRef = await ctx.run("create recurring payment", () =>
        createRecurringPayment(req.creditCard, paymentId),
      );
      for (const subscription of req.subscriptions) {
        await ctx.run(`create subscription ${subscription}`, () =>
          createSubscription(req.userId, subscription, paymentRef),
        );
      }
    },
  },
});

// 3. Workflows.
type User = { name: string; email: string };
const createUserEntry = stub("create_user_entry", 0, (_name: string, _email: string): null => null);
const sendEmailWithLink = stub(
  "send_email_with_link", 0,
  (_userId: string, _email: string, _secret: string): null => null,
);
const signupWorkflow = restate.workflow({
  name: "SignupWorkflowTs",
  handlers: {
    run: async (ctx: restate.WorkflowContext, user: User): Promise<boolean> => {
      await ctx.run("create user", () => createUserEntry(user.name, user.email));
      const secret = ctx.rand.uuidv4();
      await ctx.run("send email", () => sendEmailWithLink(ctx.key, user.email, secret));
      const clickSecret = await ctx.promise<string>("email-link").get();
      return clickSecret === secret;
    },
    click: async (ctx: restate.WorkflowSharedContext, secret: string): Promise<void> => {
      await ctx.promise<string>("email-link").resolve(secret);
    },
  },
});

// 1. Building blocks.
const pendingAwakeables: Record<string, string> = {};
const sleepMs = 1000 * Number(env("BUILDING_BLOCKS_SLEEP_SECONDS", "5"));
const cancelDelayMs = 1000 * Number(env("BUILDING_BLOCKS_CANCEL_DELAY_SECONDS", "86400"));
const announceAwakeable = stub(
  "announce_awakeable", 0,
  (invocationId: string, awakeableId: string): null => {
    pendingAwakeables[invocationId] = awakeableId;
    return null;
  },
);
const chargeBankAccount = stub(
  "charge_bank_account", 0, (_deduplicationId: string, _amount: number): boolean => true,
);
const subscriptionObject = restate.object({
  name: "SubscriptionObjectTs",
  handlers: {
    create: async (ctx: restate.ObjectContext, _request: string): Promise<string> => {
      ctx.set("status", "created");
      return "SUCCESS";
    },
    cancel: async (ctx: restate.ObjectContext): Promise<void> => {
      ctx.set("status", "cancelled");
    },
  },
});
const myService = restate.service({
  name: "MyServiceTs",
  handlers: {
    run: async (ctx: restate.Context): Promise<Record<string, unknown>> => {
      const rpcResult = await ctx.objectClient(subscriptionObject, "my-sub-123").create("my-request");
      ctx.objectSendClient(subscriptionObject, "my-sub-123").create("my-request");
      const { id, promise } = ctx.awakeable<string>();
      const invocationId = ctx.request().id;
      await ctx.run("announce awakeable", () => announceAwakeable(invocationId, id));
      const greeting = await promise;
      delete pendingAwakeables[invocationId];
      await ctx.sleep(sleepMs);
      ctx
        .objectSendClient(subscriptionObject, "my-sub-123")
        .cancel(restate.rpc.sendOpts({ delay: cancelDelayMs }));
      const paymentDeduplicationId = ctx.rand.uuidv4();
      const charged = await ctx.run("charge bank account", () =>
        chargeBankAccount(paymentDeduplicationId, 100),
      );
      return { rpcResult, greeting, charged };
    },
  },
});

// The ceiling: a handler that does nothing.
const noop = restate.service({
  name: "NoopTs",
  handlers: { noop: async (_ctx: restate.Context): Promise<void> => {} },
});

const examples: Record<string, restate.ServiceDefinition<string, unknown>[]> = {
  greeter: [greeterObject],
  subscriptions: [subscriptionService],
  signup: [signupWorkflow],
  blocks: [myService, subscriptionObject],
  noop: [noop],
};

const example = env("EXAMPLE", "greeter");
const services = examples[example];
if (!services) throw new Error(`EXAMPLE must be one of ${Object.keys(examples).join(", ")}`);
const restateHandler = restate.createEndpointHandler({ services });

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;
function handle(request: Req, response: Res): void {
  if (request.method === "GET" && (request.url === "/readyz" || request.url === "/awakeables")) {
    const body = request.url === "/readyz" ? "ready" : JSON.stringify(pendingAwakeables);
    (response as http.ServerResponse).writeHead(200, { "content-type": "application/json" });
    response.end(body);
    return;
  }
  (restateHandler as (req: Req, res: Res) => void)(request, response);
}

const port = Number(env("PORT", "9080"));
const host = env("HOST", "127.0.0.1");
const server =
  env("PROTOCOL", "h2") === "h1" ? http.createServer(handle) : http2.createServer(handle);
if (server instanceof http.Server) {
  server.keepAliveTimeout = 0; // Restate keeps its connections; never close them idle
}
server.listen(port, host, () => {
  process.stderr.write(JSON.stringify({ message: "listening", example, port }) + "\n");
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
