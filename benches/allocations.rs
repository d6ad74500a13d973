//! Heap allocations per request, by a counting global allocator, and a fixed-iteration mode for
//! instruction counts under valgrind's callgrind (issue 5).
//!
//! ```sh
//! # allocations and bytes per request for every case of benches/overhead.rs, as a table
//! # (add --json for one JSON object per line):
//! cargo bench --all-features --bench allocations
//! # run one case N times (after a warm-up) and exit, for callgrind:
//! valgrind --tool=callgrind target/release/deps/allocations-* --callgrind tas_memory_valid 2000
//! # where each allocation of one request comes from (a backtrace per allocation):
//! cargo bench --all-features --bench allocations -- --trace tas_memory_valid
//! ```
//!
//! The allocator counts every `alloc`, `alloc_zeroed` and `realloc` in the process (all
//! threads, so the SQLite worker thread's allocations count too) while `N` requests run one
//! after another on a single-threaded runtime; the table gives the mean per request and the
//! difference to `bare` ("extra"). The cases and their routers are those of `overhead`
//! (`benches/support/mod.rs`).
//!
//! In callgrind mode the instruction count of one request is `(Ir(N₂) − Ir(N₁)) / (N₂ − N₁)`,
//! computed by `scripts/bench.sh` from two runs, which cancels start-up and set-up.

#[path = "support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// `--trace`: record a backtrace for every allocation while set.
static TRACING: AtomicBool = AtomicBool::new(false);
static TRACES: Mutex<Vec<(usize, Backtrace)>> = Mutex::new(Vec::new());

thread_local! {
    /// Set while recording a backtrace (which allocates itself).
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn trace(size: usize) {
    if !TRACING.load(Relaxed) || IN_TRACE.with(Cell::get) {
        return;
    }
    IN_TRACE.with(|t| t.set(true));
    let bt = Backtrace::force_capture();
    if let Ok(mut traces) = TRACES.lock() {
        traces.push((size, bt));
    }
    IN_TRACE.with(|t| t.set(false));
}

// SAFETY: every method forwards to `System` unchanged; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        trace(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        trace(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        trace(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUESTS: u64 = 10_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = support::runtime();
    let all = rt.block_on(support::all_cases());

    if let Some(pos) = args.iter().position(|a| a == "--callgrind") {
        let name = args.get(pos + 1).expect("--callgrind CASE N");
        let n: u64 = args
            .get(pos + 2)
            .and_then(|n| n.parse().ok())
            .expect("--callgrind CASE N");
        let case = all
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        rt.block_on(async {
            for _ in 0..200 {
                black_box(case.run().await);
            }
            for _ in 0..n {
                black_box(case.run().await);
            }
        });
        rt.block_on(async move { drop(all) });
        return;
    }

    if let Some(pos) = args.iter().position(|a| a == "--trace") {
        let name = args.get(pos + 1).expect("--trace CASE");
        let case = all
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        rt.block_on(async {
            for _ in 0..500 {
                black_box(case.run().await);
            }
            TRACING.store(true, Relaxed);
            black_box(case.run().await);
            TRACING.store(false, Relaxed);
        });
        print_traces();
        rt.block_on(async move { drop(all) });
        return;
    }

    let json = args.iter().any(|a| a == "--json");
    let mut rows = Vec::new();
    for case in &all.cases {
        let (allocs, bytes) = rt.block_on(async {
            // Warm-up: lazily built tables, pool connections, prepared statements.
            for _ in 0..500 {
                black_box(case.run().await);
            }
            let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
            for _ in 0..REQUESTS {
                black_box(case.run().await);
            }
            (ALLOCS.load(Relaxed) - a0, BYTES.load(Relaxed) - b0)
        });
        rows.push((
            case.name,
            case.what,
            allocs as f64 / REQUESTS as f64,
            bytes as f64 / REQUESTS as f64,
        ));
    }
    let bare = rows.iter().find(|r| r.0 == "bare").map_or(0.0, |r| r.2);
    if json {
        for (name, what, allocs, bytes) in &rows {
            println!(
                "{}",
                serde_json::json!({
                    "name": name, "what": what, "allocs": allocs, "bytes": bytes,
                    "extra": allocs - bare, "requests": REQUESTS,
                })
            );
        }
    } else {
        println!("allocations per request (mean of {REQUESTS} requests after 500 warm-up)");
        println!(
            "{:<26} {:>10} {:>10} {:>10}",
            "case", "allocs", "extra", "bytes"
        );
        for (name, _, allocs, bytes) in &rows {
            println!(
                "{name:<26} {allocs:>10.2} {:>10.2} {bytes:>10.0}",
                allocs - bare
            );
        }
    }
    rt.block_on(async move { drop(all) });
}

/// Prints each recorded allocation: its size and the first frames past the allocator.
fn print_traces() {
    let traces = std::mem::take(&mut *TRACES.lock().unwrap());
    println!("{} allocations in one request", traces.len());
    for (i, (size, bt)) in traces.iter().enumerate() {
        println!("#{i} {size} bytes");
        let text = bt.to_string();
        let frames: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(": ") && !l.starts_with("at "))
            .map(|l| l.split_once(": ").map_or(l, |(_, f)| f))
            .skip_while(|f| {
                f.contains("backtrace")
                    || f.contains("allocations::trace")
                    || f.contains("Counting")
                    || f.starts_with("alloc::")
                    || f.starts_with("__rust")
                    || f.contains("raw_vec")
            })
            .take(6)
            .collect();
        for f in frames {
            println!("    {f}");
        }
    }
}
