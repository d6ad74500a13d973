//! Per-request overhead of a session layer, in process (issue 5).
//!
//! One criterion group, `overhead`, with one benchmark per system, all on axum 0.8 routers
//! finalized with `.with_state(())` and driven by `tower::ServiceExt::oneshot` on a
//! single-threaded tokio runtime, all sent the same 4-cookie `Cookie` header shape
//! (`theme=dark; _ga=GA1.2.3; csrftoken=abc; <session cookie>`):
//!
//! | id | what |
//! |---|---|
//! | `bare` | no layer: the baseline every overhead is measured from |
//! | `tas_memory_valid` | this crate, `MemoryStore`, valid session, `MaybeUser` handler |
//! | `tas_memory_valid_borrow` | the same, the handler only borrows the `AuthContext` |
//! | `tas_memory_valid_many` | the same as `tas_memory_valid` over 4,096 sessions sent in turn: each cookie is new to the codec's per-thread memo, so each request decodes it and computes the HMAC |
//! | `tas_anonymous` | this crate, no session cookie |
//! | `tas_bad_signature` | this crate, well-formed cookie with a wrong HMAC |
//! | `tas_unknown_token` | this crate, valid HMAC, token not in the store |
//! | `tas_sqlite_valid` | this crate, `SqliteStore` on a file in a temporary directory |
//! | `tas_postgres_valid` | this crate, `PostgresStore` (feature `postgres`, `TAS_TEST_POSTGRES_URL`) |
//! | `tas_redis_valid` | this crate, `RedisStore` (feature `redis`, `TAS_TEST_REDIS_URL`) |
//! | `tas_cached_sqlite_valid` | this crate, `CachedStore` over `SqliteStore`, a cache hit (feature `cache`) |
//! | `tas_cached_postgres_valid` | the same over `PostgresStore` (features `cache`, `postgres`) |
//! | `tower_sessions_memory` | tower-sessions 0.15, its `MemoryStore`, session holding a user id |
//! | `axum_login_memory` | axum-login 0.18 with an in-memory backend, logged-in user |
//!
//! Sessions are created just before measuring with the default 1-day `updateAge`, so no request
//! refreshes anything: the valid-session paths only read. Each case is checked once (status 200
//! and the expected body) before it is measured.
//!
//! ```sh
//! cargo bench --all-features --bench overhead -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Overhead = median(system) − median(`bare`); `scripts/bench.sh` computes it and the ratios in
//! `BENCHMARKS.md`.

#[path = "support/mod.rs"]
mod support;

use criterion::Criterion;

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let rt = support::runtime();
    let all = rt.block_on(support::all_cases());
    let mut group = criterion.benchmark_group("overhead");
    for case in &all.cases {
        group.bench_function(case.name, |b| b.to_async(&rt).iter(|| case.run()));
    }
    group.finish();
    criterion.final_summary();
    // Close pools and connections before the runtime goes away.
    rt.block_on(async move { drop(all) });
}
