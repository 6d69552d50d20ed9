//! Multi-objective evolutionary search: the engine-independent core.
//!
//! - [`nsga2`]: ranking and selection (NSGA-II with constraint domination).
//! - [`hypervolume`]: the quality indicator for a Pareto front.
//! - [`indicator`]: the one space (and reference point) every printed hypervolume uses.
//! - [`experiment`]: the grid of an `experiment` item and the comparison of its cells,
//!   with [`stats`] (bootstrap intervals, Mann–Whitney U).
//! - [`store`]: the durable run store (SQLite), which the engine and its workers share.
//!
//! `nsga2` and `hypervolume` are pure; only `store` touches the file system.

pub mod engine;
pub mod experiment;
pub mod failure;
pub mod genome;
pub mod hypervolume;
pub mod identity;
pub mod indicator;
pub mod nsga2;
pub mod report;
pub mod stats;
pub mod store;
pub mod worker;
