//! Multi-objective evolutionary search: the engine-independent core.
//!
//! - [`nsga2`]: ranking and selection (NSGA-II with constraint domination).
//! - [`hypervolume`]: the quality indicator for a Pareto front.
//! - [`store`]: the durable run store (SQLite), which the engine and its workers share.
//!
//! `nsga2` and `hypervolume` are pure; only `store` touches the file system.

pub mod engine;
pub mod genome;
pub mod hypervolume;
pub mod identity;
pub mod nsga2;
pub mod report;
pub mod store;
pub mod worker;
