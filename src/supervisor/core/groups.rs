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
        let slurm_fields =
            c.slurm_args.is_some() || c.slurm_signal.is_some() || c.slurm_signal_before_s.is_some() || c.slurm_max_stalls.is_some();
        let mut slurm = g.slurm.clone();
        match c.executor.as_deref() {
            None => {}
            Some("local") => slurm = None,
            Some("slurm") => slurm = Some(slurm.unwrap_or_default()),
            Some(other) => return err(format!("unknown executor {other:?}: expected local or slurm")),
        }
        if slurm_fields {
            let Some(o) = slurm.as_mut() else {
                return err(format!("group {name} runs its tasks on this machine; `--executor slurm` makes it a Slurm group"));
            };
            if let Some(a) = &c.slurm_args {
                o.args = a.clone();
            }
            if let Some(sig) = &c.slurm_signal {
                o.signal = sig.trim().trim_start_matches("SIG").to_string();
            }
            if let Some(s) = c.slurm_signal_before_s {
                o.signal_before_s = s;
            }
            if let Some(m) = c.slurm_max_stalls {
                o.max_stalls = m.max(1);
            }
        }
        if slurm != g.slurm {
            if let Some(o) = &slurm {
                // Slurm itself judges the options, so its own message reaches the user.
                if let Err(e) = crate::supervisor::slurm::check_options(o) {
                    return err(format!("{e:#}"));
                }
            }
            if slurm.is_some() && !g.gpus.is_empty() && c.gpus.is_none() {
                return err("a Slurm group asks Slurm for GPUs (--slurm-arg=--gres=gpu:N); clear its GPU list with --gpus none");
            }
            g.slurm = slurm;
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
        match &g.slurm {
            Some(o) => ok(format!("group {name}: Slurm, at most {} task(s) submitted at once, sbatch {}", g.slots, o.args.join(" "))),
            None => ok(format!("group {name}: {} slot(s)", g.slots)),
        }
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
