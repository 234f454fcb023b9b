//! The Elements currently serving, by mount prefix. Readers take a snapshot
//! without locking; a deploy swaps in a new table atomically, so a request
//! holds the `Arc<Element>` it started with until it ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::element::Element;

/// Mounted Elements.
#[derive(Default)]
pub struct Registry {
    by_prefix: ArcSwap<BTreeMap<String, Arc<Element>>>,
}

/// A mount that would take another Element's prefix.
#[derive(Debug, thiserror::Error)]
#[error("prefix {prefix:?} is already mounted by Element {owner:?}")]
pub struct PrefixTaken {
    /// The prefix.
    pub prefix: String,
    /// The Element holding it.
    pub owner: String,
}

impl Registry {
    /// The Element mounted at `prefix`.
    pub fn get(&self, prefix: &str) -> Option<Arc<Element>> {
        self.by_prefix.load().get(prefix).cloned()
    }

    /// Every mounted Element, by prefix.
    pub fn all(&self) -> Vec<Arc<Element>> {
        self.by_prefix.load().values().cloned().collect()
    }

    /// Mounts `element`, replacing any earlier version of the same Element
    /// (even at another prefix).
    pub fn mount(&self, element: Arc<Element>) -> Result<(), PrefixTaken> {
        let mut taken = None;
        self.by_prefix.rcu(|table| {
            let mut table = BTreeMap::clone(table);
            taken = None;
            if let Some(owner) = table.get(&element.prefix)
                && owner.name != element.name
            {
                taken = Some(PrefixTaken {
                    prefix: element.prefix.clone(),
                    owner: owner.name.to_string(),
                });
                return table;
            }
            table.retain(|_, e| e.name != element.name);
            table.insert(element.prefix.clone(), element.clone());
            table
        });
        taken.map_or(Ok(()), Err)
    }

    /// Unmounts the Element named `name`; requests it is serving finish.
    pub fn unmount(&self, name: &str) -> Option<Arc<Element>> {
        let mut removed = None;
        self.by_prefix.rcu(|table| {
            let mut table = BTreeMap::clone(table);
            removed = None;
            if let Some(prefix) = table
                .iter()
                .find(|(_, e)| &*e.name == name)
                .map(|(p, _)| p.clone())
            {
                removed = table.remove(&prefix);
            }
            table
        });
        removed
    }
}
