// Better Auth's own getSession, in process: the Node side of the comparison with
// benches/latency.rs on the same database and the same sessions (issue 5, target 3).
//
// Usage (scripts/bench.sh runs it):
//   TAS_TEST_NODE_INTEROP=tests/interop BETTER_AUTH_SECRET=… BA_DB=sqlite:/abs/file.db \
//   COOKIES_FILE=/tmp/cookies.txt [BA_REDIS_URL=redis://127.0.0.1:PORT] [LAT_REQUESTS=5000] \
//   node scripts/bench/ba-getsession.mjs
//
// It builds betterAuth() with the options of tests/interop/server.mjs (the same database, no
// cookie cache, rate limit and telemetry off), then calls auth.api.getSession({headers}) one call
// after another, cycling through the cookies (sent with the same three unrelated cookies as the
// Rust benches), 500 warm-up calls first. Every call must return a session. Prints one JSON line
// with the median and p99 in microseconds.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

for (const m of ["log", "info", "debug"]) console[m] = (...a) => console.error(...a);
delete process.env.BETTER_AUTH_TELEMETRY;
delete process.env.BETTER_AUTH_TELEMETRY_ENDPOINT;

const env = process.env;
const need = (name) => env[name] || (console.error(`ba-getsession: ${name} is required`), process.exit(2));
const interop = path.resolve(need("TAS_TEST_NODE_INTEROP"));
const secret = need("BETTER_AUTH_SECRET");
const db = need("BA_DB");
const cookiesFile = need("COOKIES_FILE");
const requests = Number(env.LAT_REQUESTS || 5000);
const NOISE = "theme=dark; _ga=GA1.2.3; csrftoken=abc";

// Resolve packages from the interop harness's node_modules.
const req = createRequire(path.join(interop, "package.json"));
const load = (spec) => import(pathToFileURL(req.resolve(spec)).href);

const { betterAuth } = await load("better-auth");
const { getMigrations } = await load("better-auth/db/migration");
const version = JSON.parse(fs.readFileSync(path.join(interop, "node_modules/better-auth/package.json"), "utf8")).version;

const closers = [];
let database;
let kind;
if (db.startsWith("sqlite:")) {
  const { default: Database } = await load("better-sqlite3");
  database = new Database(db.slice("sqlite:".length));
  closers.push(() => database.close());
  kind = "sqlite";
} else {
  const { default: pg } = await load("pg");
  database = new pg.Pool({ connectionString: db, max: 5 });
  closers.push(() => database.end());
  kind = "postgres";
}

let secondaryStorage;
if (env.BA_REDIS_URL) {
  const { createClient } = await load("redis");
  const redis = createClient({ url: env.BA_REDIS_URL });
  await redis.connect();
  closers.push(() => redis.quit());
  secondaryStorage = {
    get: (key) => redis.get(key),
    set: async (key, value, ttl) => {
      if (typeof ttl === "number" && ttl > 0) await redis.set(key, value, { EX: Math.floor(ttl) });
      else await redis.set(key, value);
    },
    delete: async (key) => {
      await redis.del(key);
    },
  };
  kind = "redis";
}

const options = {
  appName: "tower-auth-session-bench",
  baseURL: "http://localhost:3000",
  secret,
  database,
  secondaryStorage,
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  logger: { level: "error" },
};
// Better Auth refuses to start without its `account` and `verification` tables; the Rust store
// created only `user` and `session`. Its own migration adds what is missing (as BA_MIGRATE=1).
await (await getMigrations(options)).runMigrations();
const auth = betterAuth(options);

const cookies = fs
  .readFileSync(cookiesFile, "utf8")
  .split("\n")
  .filter(Boolean)
  .map((c) => new Headers({ cookie: `${NOISE}; ${c}` }));
if (!cookies.length) {
  console.error(`ba-getsession: ${cookiesFile} holds no cookie`);
  process.exit(2);
}

const samples = new Float64Array(requests);
for (let i = 0; i < 500 + requests; i++) {
  const headers = cookies[i % cookies.length];
  const t0 = process.hrtime.bigint();
  const s = await auth.api.getSession({ headers });
  const dt = Number(process.hrtime.bigint() - t0) / 1000;
  if (!s || !s.session) {
    console.error(`ba-getsession: call ${i} returned no session`);
    process.exit(1);
  }
  if (i >= 500) samples[i - 500] = dt;
}
samples.sort();
const pct = (p) => samples[Math.min(samples.length, Math.max(1, Math.ceil(samples.length * p))) - 1];
const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
process.stdout.write(
  JSON.stringify({
    system: "better-auth",
    version,
    node: process.version,
    store: kind,
    requests,
    sessions: cookies.length,
    median_us: pct(0.5),
    p99_us: pct(0.99),
    mean_us: mean,
    max_us: samples[samples.length - 1],
  }) + "\n",
);
for (const c of closers) await c();
process.exit(0);
