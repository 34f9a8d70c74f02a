//! The permission policy: `permissions.yaml` parsed and validated, and requests resolved against it.

mod signals;

pub use signals::{Signals, TcfSignal};
