//! The whole conformance kit over the in-memory reference backend.
use peerbook::conformance::MemoryFactory;

peerbook::backend_conformance_tests!(MemoryFactory);
