//! Per-request overhead under realistic traffic (issue 17): distinct users, one session each,
//! cookies sent in turn in a shuffled order, at 1,000 → 1,000,000 live sessions, next to a
//! hand-rolled floor, tower-sessions and axum-login driven with the same traffic.
//!
//! | id | what |
//! |---|---|
//! | `traffic_N/bare` | no layer, the same headers: the baseline |
//! | `traffic_N/floor` | the hand-rolled floor (`benches/support/traffic.rs`) |
//! | `traffic_N/tas_memory` | this crate over `MemoryStore`, `MaybeUser` handler |
//! | `traffic_N/tas_cached` | this crate over `CachedStore` (every session cached), `MaybeUser` |
//! | `traffic_N/tower_sessions` | tower-sessions 0.15, one session per user |
//! | `traffic_N/axum_login` | axum-login 0.18, one logged-in session per user |
//! | `traffic_10000/tas_memory_same_cookie`, `…/floor_same_cookie` | extras: one cookie repeated |
//! | `traffic_10000/floor_shared` | extra: the floor's code over records sharing `MemoryStore`'s own session and user rows (the floor's own records are copies made one after the other) |
//!
//! ```sh
//! cargo bench --all-features --bench traffic -- --warm-up-time 1 --measurement-time 3
//! TRAFFIC_SIZES=10000 cargo bench --all-features --bench traffic     # one size
//! # one case, R requests, for callgrind's cache simulator (misses per request):
//! valgrind --tool=callgrind --cache-sim=yes target/release/deps/traffic-* --callgrind tas_memory 10000 R
//! ```
//!
//! `bare`, `floor`, `tas_memory`, `tas_cached` and `floor_shared` run a second time after the others, in reverse
//! order (`…_again`): a case's time is the mean of its two medians, so a drift of the machine's
//! speed during the run (this VM's moves by a third within minutes) cancels to first order
//! instead of landing on whichever case ran in the slower minute.
//!
//! Overhead = time(case) − time(`bare`) at the same size; the ratio to the floor is
//! overhead(case) ÷ overhead(`floor`). `scripts/bench.sh` computes them.

#[path = "support/mod.rs"]
mod support;

use criterion::Criterion;
use support::traffic::{traffic, SIZES};

/// The cases measured twice, the second time in reverse order after all the others.
const AGAIN: [&str; 5] = ["bare", "floor", "tas_memory", "tas_cached", "floor_shared"];

fn sizes() -> Vec<usize> {
    std::env::var("TRAFFIC_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = support::runtime();
    if let Some(at) = args.iter().position(|a| a == "--callgrind") {
        let case = &args[at + 1];
        let sessions: usize = args[at + 2].parse().expect("SESSIONS");
        let requests: usize = args[at + 3].parse().expect("REQUESTS");
        let built = rt.block_on(traffic(sessions, false));
        let case = built
            .cases
            .iter()
            .find(|c| c.name == case)
            .unwrap_or_else(|| panic!("no case {case}"));
        rt.block_on(async {
            for _ in 0..requests {
                std::hint::black_box(case.run().await);
            }
        });
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    for n in sizes() {
        let built = rt.block_on(traffic(n, n == 10_000));
        let mut group = criterion.benchmark_group(format!("traffic_{}", built.sessions));
        for case in &built.cases {
            group.bench_function(case.name, |b| b.to_async(&rt).iter(|| case.run()));
        }
        for case in built.cases.iter().rev().filter(|c| AGAIN.contains(&c.name)) {
            group.bench_function(format!("{}_again", case.name), |b| {
                b.to_async(&rt).iter(|| case.run())
            });
        }
        group.finish();
        rt.block_on(async move { drop(built) });
    }
    criterion.final_summary();
}
