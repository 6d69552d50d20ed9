//! uhc: hardware-aware neural architecture search for physical neural networks.
//!
//! The pipeline runs one way: text → [`syntax`] → [`check`] → [`ir`] → [`backend`] → scores.
//! Every stage before the driver is pure: no files, no network, no clocks.
pub mod llm;
