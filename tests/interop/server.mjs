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
const { bearer, admin, anonymous, multiSession, jwt, organization } = await import("better-auth/plugins");
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
if (!env.BA_DB) fail("BA_DB is required (sqlite:/abs/path.db, postgres://... or mysql://...)");

const closers = [];
let database;
let dbKind;
// What Better Auth is given: the driver object itself, or with BA_PG_SCHEMA a Kysely dialect on it.
let authDatabase;
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
  if (env.BA_PG_SCHEMA) {
    const { PostgresDialect } = await import("kysely");
    authDatabase = { dialect: new PostgresDialect({ pool: database }), type: "postgres", schemaName: env.BA_PG_SCHEMA };
  }
} else if (/^mysql:\/\//.test(env.BA_DB)) {
  // mysql2's promise pool: Better Auth detects it ("getConnection" in db) and wraps it in Kysely's MysqlDialect.
  // Dates are sent and read as UTC (timezone "Z") unless the URL says otherwise (?timezone=...).
  const { createPool } = await import("mysql2/promise");
  const hasTz = new URL(env.BA_DB).searchParams.has("timezone");
  database = createPool({ uri: env.BA_DB, connectionLimit: 5, ...(hasTz ? {} : { timezone: "Z" }) });
  database.pool.on("error", (e) => log("mysql pool error:", e.message));
  dbKind = "mysql";
  closers.push(() => database.end());
} else fail(`unsupported BA_DB: ${env.BA_DB}`);

// Runs one SQL statement on the same driver object Better Auth uses (for POST /test/sql and raw user rows).
// Placeholders are the driver's own: `?` for sqlite and mysql, `$1` for postgres.
async function rawQuery(sql, params = []) {
  if (dbKind === "sqlite") {
    const stmt = database.prepare(sql);
    if (stmt.reader) {
      const rows = stmt.all(...params);
      return { rows, rowCount: rows.length };
    }
    const r = stmt.run(...params);
    return { rows: [], rowCount: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
  }
  if (dbKind === "postgres") {
    const r = await database.query(sql, params);
    return { rows: r.rows ?? [], rowCount: r.rowCount ?? null };
  }
  const [rows] = await database.query(sql, params);
  if (Array.isArray(rows)) return { rows, rowCount: rows.length };
  return { rows: [], rowCount: rows.affectedRows, lastInsertRowid: rows.insertId }; // ResultSetHeader
}
const quoteIdent = (name) => (dbKind === "mysql" ? `\`${name}\`` : `"${name}"`);
const placeholder = (i) => (dbKind === "postgres" ? `$${i}` : "?");
// A table of Better Auth's, in BA_PG_SCHEMA when there is one.
const tableRef = (name) => (dbKind === "postgres" && env.BA_PG_SCHEMA ? `${quoteIdent(env.BA_PG_SCHEMA)}.${quoteIdent(name)}` : quoteIdent(name));

// Secondary storage: plain Redis, no key prefix, TTL in seconds, exactly the interface Better Auth calls.
let secondaryStorage;
let redis;
const storageLog = []; // every call Better Auth makes, for GET /test/storage-log
let redisKind = null;
if (env.BA_REDIS_URL && env.BA_REDIS_CLUSTER_URLS) fail("set BA_REDIS_URL or BA_REDIS_CLUSTER_URLS, not both");
if (env.BA_REDIS_URL) {
  const { createClient } = await import("redis");
  redis = createClient({ url: env.BA_REDIS_URL });
  redis.on("error", (e) => log("redis error:", e.message));
  await redis.connect();
  redisKind = "single";
  closers.push(() => redis.quit().catch(() => redis.destroy()));
} else if (env.BA_REDIS_CLUSTER_URLS) {
  // Redis Cluster: the same commands, routed by key slot by node-redis.
  const { createCluster } = await import("redis");
  const rootNodes = env.BA_REDIS_CLUSTER_URLS.split(",").map((s) => s.trim()).filter(Boolean).map((url) => ({ url }));
  if (!rootNodes.length) fail("BA_REDIS_CLUSTER_URLS is empty");
  redis = createCluster({ rootNodes });
  redis.on("error", (e) => log("redis cluster error:", e.message));
  await redis.connect();
  redisKind = "cluster";
  closers.push(() => redis.close().catch(() => redis.destroy()));
}
if (redis) {
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
if (flag("BA_PRESERVE_SESSION_IN_DATABASE")) session.preserveSessionInDatabase = true;
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
const generateId = (env.BA_GENERATE_ID || "").toLowerCase() || undefined;
if (generateId !== undefined) {
  if (!["uuid", "serial"].includes(generateId)) fail(`BA_GENERATE_ID must be uuid|serial, got ${env.BA_GENERATE_ID}`);
  advanced.database = { generateId };
}

// Plugins: BA_PLUGINS=admin,anonymous,multiSession,jwt,organization,bearer (BA_BEARER=1 still adds bearer).
const PLUGIN_NAMES = ["admin", "anonymous", "multiSession", "jwt", "organization", "bearer"];
const pluginNames = [];
for (const raw of (env.BA_PLUGINS || "").split(",").map((s) => s.trim()).filter(Boolean)) {
  const name = PLUGIN_NAMES.find((n) => n.toLowerCase() === raw.toLowerCase().replace(/[-_]/g, ""));
  if (!name) fail(`BA_PLUGINS: unknown plugin ${raw} (known: ${PLUGIN_NAMES.join(", ")})`);
  if (!pluginNames.includes(name)) pluginNames.push(name);
}
if (flag("BA_BEARER") && !pluginNames.includes("bearer")) pluginNames.push("bearer");
const JWT_ALGS = { EdDSA: { alg: "EdDSA", crv: "Ed25519" }, ES256: { alg: "ES256" }, ES512: { alg: "ES512" }, RS256: { alg: "RS256" }, PS256: { alg: "PS256" } };
let jwtOptions;
const plugins = pluginNames.map((name) => {
  switch (name) {
    case "bearer":
      return bearer();
    case "admin":
      return admin();
    case "anonymous":
      return anonymous();
    case "organization":
      return organization();
    case "multiSession": {
      const max = int("BA_MULTI_SESSION_MAX");
      return multiSession(max === undefined ? {} : { maximumSessions: max });
    }
    case "jwt": {
      const algName = env.BA_JWT_ALG || "EdDSA";
      const keyPairConfig = JWT_ALGS[Object.keys(JWT_ALGS).find((a) => a.toLowerCase() === algName.toLowerCase())];
      if (!keyPairConfig) fail(`BA_JWT_ALG must be one of ${Object.keys(JWT_ALGS).join("|")}, got ${algName}`);
      const jwtOpt = {};
      if (env.BA_JWT_ISSUER) jwtOpt.issuer = env.BA_JWT_ISSUER;
      if (env.BA_JWT_AUDIENCE) jwtOpt.audience = env.BA_JWT_AUDIENCE;
      // jose time span ("15m", "1h"); a bare number means seconds (a number would otherwise be an absolute exp).
      if (env.BA_JWT_EXPIRATION) jwtOpt.expirationTime = /^\d+$/.test(env.BA_JWT_EXPIRATION) ? `${env.BA_JWT_EXPIRATION}s` : env.BA_JWT_EXPIRATION;
      jwtOptions = { jwks: { keyPairConfig }, jwt: jwtOpt };
      return jwt(jwtOptions);
    }
  }
});

const options = {
  appName: "tower-auth-session-interop",
  baseURL,
  secret: env.BETTER_AUTH_SECRET,
  database: authDatabase ?? database,
  secondaryStorage,
  session,
  advanced,
  emailAndPassword: { enabled: true, requireEmailVerification: false, autoSignIn: true },
  trustedOrigins: (env.BA_TRUSTED_ORIGINS || "").split(",").map((s) => s.trim()).filter(Boolean),
  plugins,
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

const needPlugin = (name) =>
  pluginNames.includes(name) ? undefined : [400, { error: `this route needs the ${name} plugin (BA_PLUGINS=${name})` }];
const needUserId = (body) =>
  body.userId === undefined || body.userId === null || body.userId === "" ? [400, { error: "userId required" }] : undefined;

// BigInt (e.g. sqlite lastInsertRowid) is not JSON; everything else is left as the driver returned it
// (Date -> ISO string, Buffer -> {type:"Buffer",data}).
const jsonSafe = (v) => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x)));

// The user row exactly as the driver returns it (column names, 0/1 booleans, date types), or null.
const rawUserRow = async (userId) => {
  const { rows } = await rawQuery(`SELECT * FROM ${tableRef("user")} WHERE ${quoteIdent("id")} = ${placeholder(1)}`, [userId]);
  return rows.length ? jsonSafe(rows[0]) : null;
};

const b64urlJson = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
const decodeJwt = (token) => {
  const parts = token.split(".");
  try {
    return { header: b64urlJson(parts[0]), payload: b64urlJson(parts[1]) };
  } catch {
    return null;
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
      redis: redisKind,
      generateId: generateId ?? null,
      plugins: pluginNames,
      jwt: jwtOptions ?? null,
      multiSessionMax: pluginNames.includes("multiSession") ? (int("BA_MULTI_SESSION_MAX") ?? 5) : null,
      testSql: flag("BA_TEST_SQL"),
      cookies: ctx.authCookies,
      session: {
        expiresIn: ctx.sessionConfig.expiresIn,
        updateAge: ctx.sessionConfig.updateAge,
        freshAge: ctx.sessionConfig.freshAge,
        storeSessionInDatabase: Boolean(session.storeSessionInDatabase),
        cookieCache: ctx.options.session?.cookieCache ?? { enabled: false },
      },
      trustedOrigins: ctx.trustedOrigins,
      bearer: pluginNames.includes("bearer"),
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

  // ---- anonymous plugin: a guest's session (`isAnonymous` user), as POST /sign-in/anonymous makes it.
  "POST /test/sign-in-anonymous": async (body) => {
    const missing = needPlugin("anonymous");
    if (missing) return missing;
    const r = await callApi(auth.api.signInAnonymous, { headers: toHeaders(body.headers) });
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

  // ---- admin plugin: ban state written with the internal adapter (no admin session needed).
  "POST /test/ban-user": async (body) => {
    const missing = needPlugin("admin") ?? needUserId(body);
    if (missing) return missing;
    const userId = String(body.userId);
    if (!(await ctx.internalAdapter.findUserById(userId))) return [404, { error: `user ${userId} not found` }];
    const secs = body.banExpiresInSeconds;
    if (secs !== undefined && secs !== null && typeof secs !== "number") return [400, { error: "banExpiresInSeconds must be a number" }];
    // As the admin plugin's banUser: reason defaults to "No reason", no expiry means a permanent ban.
    const user = await ctx.internalAdapter.updateUser(userId, {
      banned: true,
      banReason: "banReason" in body ? body.banReason : "No reason",
      banExpires: typeof secs === "number" ? new Date(Date.now() + secs * 1000) : null,
      updatedAt: new Date(),
    });
    if (body.revokeSessions) await ctx.internalAdapter.deleteUserSessions(userId); // banUser does this too
    return [200, { user, row: await rawUserRow(userId) }];
  },

  "POST /test/unban-user": async (body) => {
    const missing = needPlugin("admin") ?? needUserId(body);
    if (missing) return missing;
    const userId = String(body.userId);
    if (!(await ctx.internalAdapter.findUserById(userId))) return [404, { error: `user ${userId} not found` }];
    const user = await ctx.internalAdapter.updateUser(userId, { banned: false, banReason: null, banExpires: null, updatedAt: new Date() });
    return [200, { user, row: await rawUserRow(userId) }];
  },

  "POST /test/user": async (body) => {
    const missing = needUserId(body);
    if (missing) return missing;
    const userId = String(body.userId);
    const user = await ctx.internalAdapter.findUserById(userId);
    return [200, { user: user ?? null, row: await rawUserRow(userId) }];
  },

  // ---- jwt plugin
  "POST /test/token": async (body) => {
    const missing = needPlugin("jwt");
    if (missing) return missing;
    const r = await callApi(auth.api.getToken, { headers: toHeaders(body.headers) });
    const token = r.status === 200 ? r.body?.token ?? null : null;
    return [200, { ...r, token, decoded: token ? decodeJwt(token) : null }];
  },

  "GET /test/jwks": async () => {
    const missing = needPlugin("jwt");
    if (missing) return missing;
    const r = await callApi(auth.api.getJwks, {});
    return [200, { status: r.status, body: r.body }];
  },

  // ---- sign-out (any plugin set; multiSession's after-hook also expires the *_multi-* cookies)
  "POST /test/sign-out": async (body) => {
    const r = await callApi(auth.api.signOut, { headers: toHeaders(body.headers) });
    return [200, r];
  },

  // ---- multiSession plugin
  "POST /test/list-device-sessions": async (body) => {
    const missing = needPlugin("multiSession");
    if (missing) return missing;
    const r = await callApi(auth.api.listDeviceSessions, { headers: toHeaders(body.headers) });
    return [200, r];
  },

  "POST /test/set-active-session": async (body) => {
    const missing = needPlugin("multiSession");
    if (missing) return missing;
    const r = await callApi(auth.api.setActiveSession, { headers: toHeaders(body.headers), body: { sessionToken: body.sessionToken } });
    return [200, { ...r, cookie: cookieHeaderFrom(r.setCookie) }];
  },

  "POST /test/revoke-device-session": async (body) => {
    const missing = needPlugin("multiSession");
    if (missing) return missing;
    const r = await callApi(auth.api.revokeDeviceSession, { headers: toHeaders(body.headers), body: { sessionToken: body.sessionToken } });
    return [200, r];
  },

  // ---- raw SQL on Better Auth's own driver object (only with BA_TEST_SQL=1)
  "POST /test/sql": async (body) => {
    if (!flag("BA_TEST_SQL")) return [403, { error: "POST /test/sql is disabled; start the server with BA_TEST_SQL=1" }];
    if (typeof body.sql !== "string" || !body.sql.trim()) return [400, { error: "sql (string) required" }];
    if (body.params !== undefined && !Array.isArray(body.params)) return [400, { error: "params must be an array" }];
    const r = await rawQuery(body.sql, body.params ?? []);
    return [200, { db: dbKind, ...jsonSafe(r) }];
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
  log(`better-auth ${VERSION}, db=${dbKind}, redis=${Boolean(secondaryStorage)}, baseURL=${baseURL}, cookie=${ctx.authCookies.sessionToken.name}` +
    (redisKind === "cluster" ? ", redis-cluster" : "") + (generateId ? `, generateId=${generateId}` : "") + (pluginNames.length ? `, plugins=${pluginNames.join(",")}` : ""));
  fs.writeSync(1, `LISTENING ${actual}\n`);
});
