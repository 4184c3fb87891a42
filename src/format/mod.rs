//! Floor L4. Text formats of the sensor's typed values, made where they are
//! written: the flow line (`flow_line`). The floors below return typed
//! records and alerts and build no JSON (`tools/layers.py` checks it); the
//! alert line is the `Serialize` of `crate::alert::Alert`, written by the
//! runtime (`crate::pipeline::analysis`).

pub mod flow_line;
