//! The one integration-test binary (see matklad's "Delete Cargo Integration Tests").
