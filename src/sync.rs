//! Small synchronisation helpers shared by the layers.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex that guards plain data (maps, counters, a state value). A panic while it was
/// held cannot leave such data half-updated in a way that matters, so a poisoned lock is
/// still used rather than turning one panic into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
