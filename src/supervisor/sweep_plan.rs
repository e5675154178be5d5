//! A sweep ready to queue: what `clipgan sweep` and the console's sweep form both build
//! (config, axes, shared overrides, group, pruning...), checked member by member against
//! the config schema, and turned into the one `add_sweep` request. Shared so that the
//! two send the same request for the same sweep.
use super::protocol::{AddSweep, AddTask};
use super::prune::PruneSpec;
use super::sweep::{Axes, Member};
use crate::rundir::JobKind;
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The sweep's name (default: the config's file name, see [`Plan::default_name`]).
    pub name: String,
    /// The config every member starts from (absolute).
    pub config: PathBuf,
    pub job: Option<JobKind>,
    /// Arguments for every member's job (as after `--`).
    pub args: Vec<String>,
    pub group: Option<String>,
    pub after: Vec<u64>,
    pub held: bool,
    /// Overrides every member shares (before its own).
    pub sets: Vec<String>,
    pub axes: Axes,
    pub prune: Option<PruneSpec>,
}

impl Plan {
    /// The name a sweep of `config` gets when none is given.
    pub fn default_name(config: &std::path::Path) -> String {
        config.file_stem().map(|s| crate::rundir::name_from_file_stem(&s.to_string_lossy())).unwrap_or_default()
    }

    /// Every member, each checked: the base config with the shared overrides, the axes,
    /// then each member's config (so nothing is queued when one would not load).
    pub fn members(&self) -> Result<Vec<Member>, String> {
        let base = crate::config::load_with(&self.config, &self.sets).map_err(|e| e.to_string())?;
        let members = self.axes.expand(base.config.clipgan.seed)?;
        let base_dir = crate::config::base_dir_for(&self.config);
        for m in &members {
            let all: Vec<String> = self.sets.iter().chain(&m.overrides).cloned().collect();
            crate::config::parse_with(&self.config, &base.text, base_dir.clone(), &all)
                .map_err(|e| format!("sweep member {}: {e}", m.label))?;
        }
        Ok(members)
    }

    /// The one request that queues `members` (from [`Plan::members`]).
    pub fn request(&self, members: &[Member]) -> AddSweep {
        let tasks = members
            .iter()
            .map(|m| AddTask {
                job: self.job,
                config: Some(self.config.clone()),
                args: self.args.clone(),
                group: self.group.clone(),
                after: self.after.clone(),
                label: Some(m.label.clone()),
                held: self.held,
                overrides: self.sets.iter().chain(&m.overrides).cloned().collect(),
                ..AddTask::default()
            })
            .collect();
        AddSweep { name: self.name.clone(), config: Some(self.config.clone()), keys: self.axes.keys(), tasks, prune: self.prune.clone() }
    }
}
