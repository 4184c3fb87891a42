//! Floor L4 (`sink`). Sinks no flag names: alerts kept in memory (`check --against`, tests) or
//! dropped (`--fail-on` without an alert sink).

use super::AlertSink;
use crate::alert::Alert;
use std::io;
use std::sync::Arc;

/// Keeps alerts in memory behind a shared handle.
#[derive(Clone, Default)]
pub struct Collect(pub Arc<std::sync::Mutex<Vec<Alert>>>);

impl AlertSink for Collect {
    fn alert(&mut self, a: &Alert) -> io::Result<()> {
        if let Ok(mut v) = self.0.lock() {
            v.push(a.clone());
        }
        Ok(())
    }
}

/// Drops every alert: the analysis thread still runs and counts what it
/// would write (`--fail-on` without `--alerts`).
pub struct Discard;

impl AlertSink for Discard {
    fn alert(&mut self, _: &Alert) -> io::Result<()> {
        Ok(())
    }
}
