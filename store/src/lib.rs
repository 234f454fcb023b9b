//! The Elements document store (in progress).
