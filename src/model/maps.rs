//! Floor L0 (`model`). Hash maps keyed by values a sender chooses (addresses, ports): foldhash,
//! seeded per process, so a crafted key set cannot pick the collisions.

/// A `HashMap` with a per-process random foldhash seed.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A `HashSet` with a per-process random foldhash seed.
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
