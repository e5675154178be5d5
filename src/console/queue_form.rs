//! The queue form of the configs view (`enter` on a config, `F` for a fake-run):
//! `GROUP [AFTER_ID...] [any:ID...] [-- ARGS...]`.
use crate::supervisor::protocol::AddTask;
use std::path::Path;

/// `GROUP [ID...] [any:ID...] [-- ARGS...]` -> a task for `config`.
pub fn parse_queue_form(text: &str, config: Option<&Path>) -> Result<AddTask, String> {
    let all: Vec<&str> = text.split_whitespace().collect();
    let (head, args) = match all.iter().position(|w| *w == "--") {
        Some(i) => (&all[..i], &all[i + 1..]),
        None => (&all[..], &all[..0]),
    };
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut words = head.iter().copied();
    let group = words.next().map(str::to_string);
    let mut after = Vec::new();
    let mut after_any = Vec::new();
    for w in words {
        let (list, n) = match w.strip_prefix("any:") {
            Some(n) => (&mut after_any, n),
            None => (&mut after, w),
        };
        list.push(n.parse::<u64>().map_err(|_| format!("{w:?} is not a task id (GROUP [ID...] [any:ID...])"))?);
    }
    Ok(AddTask { config: config.map(Path::to_path_buf), group, after, after_any, args, ..AddTask::default() })
}
