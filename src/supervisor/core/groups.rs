//! `groups add`, `groups set`, `groups remove`.
use super::{err, ok, Core};
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;

impl Core {
    pub(super) fn group_add(&mut self, name: String, change: GroupChange) -> Response {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return err(format!("invalid group name {name:?}: use letters, digits, - and _"));
        }
        if self.state.groups.contains_key(&name) {
            return err(format!("group {name} exists; `clipgan groups set {name} ...` changes it"));
        }
        self.state.groups.insert(name.clone(), Group::default());
        match self.group_set(&name, change) {
            Response::Error { message, details } => {
                self.state.groups.remove(&name);
                Response::Error { message, details }
            }
            _ => ok(format!("group {name} added")),
        }
    }

    pub(super) fn group_set(&mut self, name: &str, c: GroupChange) -> Response {
        let Some(g) = self.state.groups.get_mut(name) else { return err(format!("no group {name:?}")) };
        if c.slots == Some(0) {
            return err("a group needs at least 1 slot");
        }
        if let Some(gpus) = &c.gpus {
            if let Some(bad) = gpus.iter().find(|s| s.is_empty() || !s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')) {
                return err(format!("invalid GPU id {bad:?}"));
            }
        }
        if let Some(s) = c.slots {
            g.slots = s;
        }
        if let Some(v) = c.gpus {
            g.gpus = v;
        }
        if let Some(p) = c.pause_on_failure {
            g.pause_on_failure = p;
        }
        if let Some(h) = c.on_finish {
            g.on_finish = Some(h).filter(|h| !h.trim().is_empty());
        }
        self.dirty = true;
        ok(format!("group {name}: {} slot(s)", g.slots))
    }

    pub(super) fn group_remove(&mut self, name: &str) -> Response {
        if name == DEFAULT_GROUP {
            return err("the default group cannot be removed");
        }
        if !self.state.groups.contains_key(name) {
            return err(format!("no group {name:?}"));
        }
        let live: Vec<u64> = self.state.tasks.iter().filter(|t| t.group == name && !t.state.is_final()).map(|t| t.id).collect();
        if !live.is_empty() {
            return err(format!("group {name} still has tasks {live:?}"));
        }
        self.state.groups.remove(name);
        self.dirty = true;
        ok(format!("group {name} removed"))
    }
}
