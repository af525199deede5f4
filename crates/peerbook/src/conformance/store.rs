//! Conformance tests of every PeerBook operation and design rule (being written).
