//! The one integration-test binary (see matklad's "Delete Cargo Integration Tests").

mod llm_client;
mod llm_server;
