//! erpos-applications: vertical packs built on the kernel (the medical-aesthetics clinic)
//! and the pieces of the `erpos` binary that tests and benches also use.

pub mod bench;
pub mod bench_clinic;
pub mod bench_kernel;
pub mod bench_rules;
pub mod bench_search;
pub mod bench_tasks;
pub mod console;
pub mod demo_day;
pub mod figures;
pub mod pack;
