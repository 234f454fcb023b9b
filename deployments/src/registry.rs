//! The Elements currently serving, by mount prefix. Readers take a snapshot
//! without locking; a deploy swaps in a new table atomically, so a request
//! holds the `Arc<Element>` it started with until it ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use elements_host::element::Element;

/// Mounted Elements.
#[derive(Default)]
pub struct Registry {
    table: ArcSwap<Table>,
}

/// One immutable version of the mount table.
#[derive(Default, Clone)]
struct Table {
    by_prefix: BTreeMap<String, Arc<Element>>,
    core_routes: BTreeMap<String, Arc<Element>>,
    rpcs: BTreeMap<String, Arc<Element>>,
}

/// A mount that would take another Element's prefix or core route.
#[derive(Debug, thiserror::Error)]
#[error("{path:?} is already mounted by Element {owner:?}")]
pub struct PrefixTaken {
    /// The prefix or core route.
    pub path: String,
    /// The Element holding it.
    pub owner: String,
}

impl Registry {
    /// The Element mounted at `prefix`.
    pub fn get(&self, prefix: &str) -> Option<Arc<Element>> {
        self.table.load().by_prefix.get(prefix).cloned()
    }

    /// The serving Element named `name`.
    pub fn by_name(&self, name: &str) -> Option<Arc<Element>> {
        self.table
            .load()
            .by_prefix
            .values()
            .find(|e| &*e.name == name)
            .cloned()
    }

    /// The Element serving the core extension route `path`.
    pub fn core_route(&self, path: &str) -> Option<Arc<Element>> {
        self.table.load().core_routes.get(path).cloned()
    }

    /// The Element serving the Nakama RPC `id` (lowercase).
    pub fn rpc(&self, id: &str) -> Option<Arc<Element>> {
        self.table.load().rpcs.get(id).cloned()
    }

    /// Every mounted Element, by prefix.
    pub fn all(&self) -> Vec<Arc<Element>> {
        self.table.load().by_prefix.values().cloned().collect()
    }

    /// Mounts `element`, replacing any earlier version of the same Element
    /// (even at another prefix).
    pub fn mount(&self, element: Arc<Element>) -> Result<(), PrefixTaken> {
        let mut taken = None;
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            taken = None;
            let claims = std::iter::once((&table.by_prefix, &element.prefix, ""))
                .chain(element.core_routes.iter().map(|r| (&table.core_routes, r, "")))
                .chain(element.rpcs.iter().map(|id| (&table.rpcs, id, "rpc:")));
            for (map, path, kind) in claims {
                if let Some(owner) = map.get(path)
                    && owner.name != element.name
                {
                    taken = Some(PrefixTaken {
                        path: format!("{kind}{path}"),
                        owner: owner.name.to_string(),
                    });
                    return table;
                }
            }
            table.remove(&element.name);
            table.by_prefix.insert(element.prefix.clone(), element.clone());
            for route in &element.core_routes {
                table.core_routes.insert(route.clone(), element.clone());
            }
            for id in &element.rpcs {
                table.rpcs.insert(id.clone(), element.clone());
            }
            table
        });
        taken.map_or(Ok(()), Err)
    }

    /// Unmounts the Element named `name`; requests it is serving finish.
    pub fn unmount(&self, name: &str) -> Option<Arc<Element>> {
        let mut removed = None;
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            removed = table.remove(name);
            table
        });
        removed
    }
}

impl Table {
    /// Removes every mount of the Element named `name`; returns it.
    fn remove(&mut self, name: &str) -> Option<Arc<Element>> {
        let mut removed = None;
        self.by_prefix.retain(|_, e| {
            let keep = &*e.name != name;
            if !keep {
                removed = Some(e.clone());
            }
            keep
        });
        self.core_routes.retain(|_, e| &*e.name != name);
        self.rpcs.retain(|_, e| &*e.name != name);
        removed
    }
}
