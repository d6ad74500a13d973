// Better Auth reference server for the tower-auth-session interop tests.
// Protocol: prints exactly one line "LISTENING <port>" on stdout when ready; everything else
// goes to stderr. Exits on SIGTERM/SIGINT and when stdin closes. See README.md.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";

// Nothing but the LISTENING line may reach stdout: route console.log/info/debug to stderr.
for (const m of ["log", "info", "debug"]) console[m] = (...a) => console.error(...a);
// Never let the environment switch telemetry on (it would try to reach the internet).
delete process.env.BETTER_AUTH_TELEMETRY;
delete process.env.BETTER_AUTH_TELEMETRY_ENDPOINT;

const { betterAuth } = await import("better-auth");
const { toNodeHandler } = await import("better-auth/node");
const { getMigrations } = await import("better-auth/db/migration");
const { bearer } = await import("better-auth/plugins");
const { makeSignature } = await import("better-auth/crypto");

const log = (...a) => process.stderr.write(`[interop] ${a.map((x) => (typeof x === "string" ? x : inspect(x, { depth: 4 }))).join(" ")}\n`);
const fail = (msg) => {
  process.stderr.write(`[interop] fatal: ${msg}\n`);
  process.exit(2);
};

function betterAuthVersion() {
  // better-auth does not export ./package.json; walk up from its resolved entry point.
  let dir = path.dirname(fileURLToPath(import.meta.resolve("better-auth")));
  while (dir !== path.dirname(dir)) {
    const p = path.join(dir, "package.json");
    if (fs.existsSync(p)) {
      const pkg = JSON.parse(fs.readFileSync(p, "utf8"));
      if (pkg.name === "better-auth") return pkg.version;
    }
    dir = path.dirname(dir);
  }
  return "unknown";
}
const VERSION = betterAuthVersion();

// ---------------------------------------------------------------- configuration
const env = process.env;
const int = (name) => {
  if (env[name] === undefined || env[name] === "") return undefined;
  const n = Number(env[name]);
  if (!Number.isInteger(n) || n < 0) fail(`${name} must be a non-negative integer, got ${env[name]}`);
  return n;
};
const flag = (name) => ["1", "true", "yes"].includes((env[name] || "").toLowerCase());

if (!env.BETTER_AUTH_SECRET) fail("BETTER_AUTH_SECRET is required");
if (!env.BA_DB) fail("BA_DB is required (sqlite:/abs/path.db or postgres://...)");

const closers = [];
let database;
let dbKind;
if (env.BA_DB.startsWith("sqlite:")) {
  const { default: Database } = await import("better-sqlite3");
  database = new Database(env.BA_DB.slice("sqlite:".length));
  dbKind = "sqlite";
  closers.push(() => database.close());
} else if (/^postgres(ql)?:\/\//.test(env.BA_DB)) {
  const { default: pg } = await import("pg");
  database = new pg.Pool({ connectionString: env.BA_DB, max: 5 });
  database.on("error", (e) => log("pg pool error:", e.message));
  dbKind = "postgres";
  closers.push(() => database.end());
} else fail(`unsupported BA_DB: ${env.BA_DB}`);

// Secondary storage: plain Redis, no key prefix, TTL in seconds, exactly the interface Better Auth calls.
let secondaryStorage;
let redis;
const storageLog = []; // every call Better Auth makes, for GET /test/storage-log
if (env.BA_REDIS_URL) {
  const { createClient } = await import("redis");
  redis = createClient({ url: env.BA_REDIS_URL });
  redis.on("error", (e) => log("redis error:", e.message));
  await redis.connect();
  closers.push(() => redis.quit().catch(() => redis.destroy()));
  const rec = (e) => {
    storageLog.push({ at: Date.now(), ...e });
    if (storageLog.length > 10000) storageLog.shift();
  };
  secondaryStorage = {
    get: async (key) => {
      const value = await redis.get(key);
      rec({ op: "get", key, hit: value !== null });
      return value;
    },
    getAndDelete: async (key) => {
      const value = await redis.getDel(key);
      rec({ op: "getAndDelete", key, hit: value !== null });
      return value;
    },
    set: async (key, value, ttl) => {
      rec({ op: "set", key, ttl: ttl ?? null, value });
      if (typeof ttl === "number" && ttl > 0) await redis.set(key, value, { EX: Math.floor(ttl) });
      else await redis.set(key, value);
    },
    delete: async (key) => {
      rec({ op: "delete", key });
      await redis.del(key);
    },
    increment: async (key, ttl) => {
      const n = await redis.incr(key);
      if (n === 1 && ttl > 0) await redis.expire(key, Math.floor(ttl));
      rec({ op: "increment", key, ttl, value: n });
      return n;
    },
  };
}

const baseURL = env.BA_BASE_URL || "http://localhost:3000";
const cookieCacheMode = (env.BA_COOKIE_CACHE || "off").toLowerCase();
if (!["off", "compact", "jwt", "jwe"].includes(cookieCacheMode)) fail(`BA_COOKIE_CACHE must be off|compact|jwt|jwe, got ${cookieCacheMode}`);

const session = {};
if (int("BA_EXPIRES_IN") !== undefined) session.expiresIn = int("BA_EXPIRES_IN");
if (int("BA_UPDATE_AGE") !== undefined) session.updateAge = int("BA_UPDATE_AGE");
if (int("BA_FRESH_AGE") !== undefined) session.freshAge = int("BA_FRESH_AGE");
if (flag("BA_DISABLE_SESSION_REFRESH")) session.disableSessionRefresh = true;
if (flag("BA_DEFER_SESSION_REFRESH")) session.deferSessionRefresh = true;
if (flag("BA_STORE_SESSION_IN_DATABASE")) session.storeSessionInDatabase = true;
if (cookieCacheMode !== "off") {
  session.cookieCache = { enabled: true, strategy: cookieCacheMode };
  if (int("BA_COOKIE_CACHE_MAX_AGE") !== undefined) session.cookieCache.maxAge = int("BA_COOKIE_CACHE_MAX_AGE");
}

const advanced = {
  // Explicit, so NODE_ENV=test / TEST=1 in the parent environment cannot change the Origin rules.
  disableOriginCheck: false,
  disableCSRFCheck: false,
};
if (env.BA_COOKIE_PREFIX) advanced.cookiePrefix = env.BA_COOKIE_PREFIX;
if (env.BA_SESSION_COOKIE_NAME) advanced.cookies = { session_token: { name: env.BA_SESSION_COOKIE_NAME } };

const options = {
  appName: "tower-auth-session-interop",
  baseURL,
  secret: env.BETTER_AUTH_SECRET,
  database,
  secondaryStorage,
  session,
  advanced,
  emailAndPassword: { enabled: true, requireEmailVerification: false, autoSignIn: true },
  trustedOrigins: (env.BA_TRUSTED_ORIGINS || "").split(",").map((s) => s.trim()).filter(Boolean),
  plugins: flag("BA_BEARER") ? [bearer()] : [],
  rateLimit: { enabled: false }, // tests hammer the endpoints; also keeps rate-limit keys out of Redis
  telemetry: { enabled: false },
  logger: {
    level: env.BA_LOG_LEVEL || "warn",
    log: (level, message, ...args) => log(`better-auth ${level}: ${message}`, ...args),
  },
};

if (flag("BA_MIGRATE")) {
  const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(options);
  log(`migrate (${dbKind}): create [${toBeCreated.map((t) => t.table).join(", ")}], add columns to [${toBeAdded.map((t) => t.table).join(", ")}]`);
  await runMigrations();
}

const auth = betterAuth(options);
const ctx = await auth.$context;
const authHandler = toNodeHandler(auth);

// ---------------------------------------------------------------- helpers
const readJson = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > 1 << 20) reject(new Error("body too large"));
      else chunks.push(c);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (!text) return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new Error(`invalid JSON body: ${e.message}`));
      }
    });
    req.on("error", reject);
  });

const send = (res, status, obj) => {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
};

// Split a Web Headers object into the Set-Cookie lines and a plain object of the others.
const splitHeaders = (headers) => {
  const setCookie = headers ? headers.getSetCookie() : [];
  const other = {};
  if (headers) for (const [k, v] of headers) if (k !== "set-cookie") other[k] = v;
  return { setCookie, headers: other };
};

// "name=value; name2=value2" built from Set-Cookie lines, skipping deletions (empty value / Max-Age=0).
const cookieHeaderFrom = (setCookie) =>
  setCookie
    .filter((l) => !/;\s*max-age=0(\s*;|\s*$)/i.test(l))
    .map((l) => l.split(";")[0])
    .filter((pair) => pair.indexOf("=") > 0 && pair.slice(pair.indexOf("=") + 1) !== "")
    .join("; ");

const toHeaders = (obj) => {
  const h = new Headers();
  for (const [k, v] of Object.entries(obj || {})) if (v !== undefined && v !== null) h.set(k, String(v));
  return h;
};

// Calls an auth.api endpoint with returnHeaders; APIErrors become {status, body} instead of throwing.
const callApi = async (fn, args) => {
  try {
    const r = await fn({ ...args, returnHeaders: true, returnStatus: true });
    return { status: r.status ?? 200, body: r.response ?? null, ...splitHeaders(r.headers) };
  } catch (e) {
    if (e && typeof e.statusCode === "number") {
      // better-call attaches the response headers (e.g. cookie deletions) to a thrown APIError.
      const hdrs = new Headers(e.headers instanceof Headers ? e.headers : undefined);
      const attached = e[Symbol.for("better-call:api-error-headers")];
      if (attached instanceof Headers) for (const [k, v] of attached) k === "set-cookie" ? null : hdrs.set(k, v);
      if (attached instanceof Headers) for (const c of attached.getSetCookie()) hdrs.append("set-cookie", c);
      return { status: e.statusCode, body: e.body ?? { message: e.message }, ...splitHeaders(hdrs) };
    }
    throw e;
  }
};

const testRoutes = {
  "GET /test/health": async () => [200, { ok: true, version: VERSION }],

  "GET /test/config": async () => [
    200,
    {
      version: VERSION,
      baseURL: ctx.baseURL,
      db: dbKind,
      secondaryStorage: Boolean(secondaryStorage),
      cookies: ctx.authCookies,
      session: {
        expiresIn: ctx.sessionConfig.expiresIn,
        updateAge: ctx.sessionConfig.updateAge,
        freshAge: ctx.sessionConfig.freshAge,
        storeSessionInDatabase: Boolean(session.storeSessionInDatabase),
        cookieCache: ctx.options.session?.cookieCache ?? { enabled: false },
      },
      trustedOrigins: ctx.trustedOrigins,
      bearer: flag("BA_BEARER"),
    },
  ],

  "POST /test/get-session": async (body) => {
    const query = {};
    if (body.disableCookieCache !== undefined) query.disableCookieCache = Boolean(body.disableCookieCache);
    if (body.disableRefresh !== undefined) query.disableRefresh = Boolean(body.disableRefresh);
    const r = await callApi(auth.api.getSession, { headers: toHeaders(body.headers), query });
    return [200, { status: r.status, session: r.body ?? null, setCookie: r.setCookie, headers: r.headers }];
  },

  "POST /test/sign-up": async (body) => {
    const { email, password, name = "Test User", rememberMe } = body;
    const r = await callApi(auth.api.signUpEmail, {
      body: { email, password, name, ...(rememberMe === undefined ? {} : { rememberMe }) },
      headers: toHeaders(body.headers),
    });
    return [200, { ...r, cookie: cookieHeaderFrom(r.setCookie) }];
  },

  "POST /test/sign-in": async (body) => {
    const { email, password, rememberMe } = body;
    const r = await callApi(auth.api.signInEmail, {
      body: { email, password, ...(rememberMe === undefined ? {} : { rememberMe }) },
      headers: toHeaders(body.headers),
    });
    return [200, { ...r, cookie: cookieHeaderFrom(r.setCookie) }];
  },

  "POST /test/sign": async (body) => {
    if (typeof body.value !== "string") return [400, { error: "value (string) required" }];
    const signature = await makeSignature(body.value, ctx.secret);
    return [200, { signature, cookieValue: encodeURIComponent(`${body.value}.${signature}`) }];
  },

  "GET /test/storage-log": async (_body, url) => {
    const out = storageLog.slice();
    if (url.searchParams.get("clear") === "1") storageLog.length = 0;
    return [200, { enabled: Boolean(secondaryStorage), calls: out }];
  },
};

// ---------------------------------------------------------------- server
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  try {
    if (url.pathname === "/api/auth" || url.pathname.startsWith("/api/auth/")) return await authHandler(req, res);
    const route = testRoutes[`${req.method} ${url.pathname}`];
    if (!route) return send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
    const body = req.method === "POST" ? await readJson(req) : {};
    const [status, obj] = await route(body, url);
    send(res, status, obj);
  } catch (e) {
    log(`error on ${req.method} ${url.pathname}:`, e);
    if (!res.headersSent) send(res, 500, { error: String(e?.message ?? e) });
    else res.destroy();
  }
});
server.keepAliveTimeout = 1000;

let stopping = false;
async function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  log(`shutting down (${reason})`);
  setTimeout(() => process.exit(0), 2000).unref();
  server.close();
  server.closeAllConnections?.();
  for (const c of closers) {
    try {
      await c();
    } catch (e) {
      log("close error:", e.message);
    }
  }
  process.exit(0);
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
if (!flag("BA_IGNORE_STDIN")) {
  process.stdin.on("end", () => shutdown("stdin end"));
  process.stdin.on("close", () => shutdown("stdin closed"));
  process.stdin.on("error", () => shutdown("stdin error"));
  process.stdin.resume(); // discard anything written; we only care about EOF
}

const port = int("PORT") ?? 0;
server.on("error", (e) => fail(`listen: ${e.message}`));
server.listen(port, "127.0.0.1", () => {
  const actual = server.address().port;
  log(`better-auth ${VERSION}, db=${dbKind}, redis=${Boolean(secondaryStorage)}, baseURL=${baseURL}, cookie=${ctx.authCookies.sessionToken.name}`);
  fs.writeSync(1, `LISTENING ${actual}\n`);
});
