//! Integration tests of the event contract: the documented examples, and the
//! decoder under arbitrary input.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod decoder_props;
mod docs_examples;
