//! The whole conformance kit over the in-memory reference backend.
use peerbook::conformance::MemoryFactory;

peerbook::conformance_tests!(MemoryFactory);
