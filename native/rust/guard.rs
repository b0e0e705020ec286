//! Panic boundary for every `extern "C"` function of the glue.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rustls_ffi::rustls_result;

/// Run `f`, turning a panic into `RUSTLS_RESULT_PANIC`, as rustls-ffi does.
pub(crate) fn result_boundary<F>(f: F) -> rustls_result
where
    F: FnOnce() -> rustls_result,
{
    // Every caller hands over raw pointers it owns for the call only; nothing
    // observable is left half-updated when a panic is turned into an error.
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(rustls_result::Panic)
}

/// Run `f` for a function without a result code: a panic yields `fallback`.
pub(crate) fn value_boundary<T, F>(fallback: T, f: F) -> T
where
    F: FnOnce() -> T,
{
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}
