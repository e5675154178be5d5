//! Getting `clipgan` into a user's shell: `scripts/install.sh` (what `make install` runs)
//! with the test build of the binary, then the real shells complete from what it wrote.
//! bash, zsh and fish come from Debian (scripts/test-deps.sh installs them).
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_clipgan");

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn shell(name: &str) -> Command {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "this test runs the real {name}; install Debian's package `{name}` (make test does as root)");
    Command::new(name)
}

/// Installs into a temporary prefix; returns it.
fn install() -> tempfile::TempDir {
    let prefix = tempfile::tempdir().unwrap();
    run(Command::new(repo("scripts/install.sh")).arg(BIN).arg(prefix.path()));
    prefix
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn install_writes_a_binary_that_runs_from_anywhere_with_man_pages() {
    let prefix = install();
    let p = prefix.path();
    // The installed copy finds libtorch by its rpath: no LD_LIBRARY_PATH, any folder.
    let out = run(Command::new(p.join("bin/clipgan")).arg("--version").env_remove("LD_LIBRARY_PATH").current_dir("/"));
    assert!(stdout(&out).starts_with("clipgan "), "{}", stdout(&out));
    // One page per subcommand, nested ones included, titled with their full path.
    let man1 = p.join("share/man/man1");
    for page in ["clipgan.1", "clipgan-train.1", "clipgan-queue-add.1", "clipgan-bench-train-step.1", "clipgan-fake-run.1"] {
        let text = std::fs::read_to_string(man1.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        let title = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {title} 1")), "{page} is not titled {title}:\n{}", &text[..text.len().min(400)]);
    }
    let add = std::fs::read_to_string(man1.join("clipgan-queue-add.1")).unwrap();
    assert!(add.contains("clipgan queue add") && add.contains("\\-\\-after"), "usage line or options missing");
    // Uninstall removes everything install wrote.
    run(Command::new(repo("scripts/install.sh")).arg("--uninstall").arg(p));
    let left: Vec<_> = walk(p).into_iter().filter(|f| f.is_file()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn install_refuses_a_binary_that_is_not_there() {
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new(repo("scripts/install.sh")).arg(prefix.path().join("nope")).arg(prefix.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.contains("not an executable"), "{err}");
}

#[test]
fn bash_completes_subcommands_nested_subcommands_and_options() {
    let prefix = install();
    let file = prefix.path().join("share/bash-completion/completions/clipgan");
    // What bash does on <tab>: COMP_WORDS/COMP_CWORD set, the function called, COMPREPLY read.
    let complete = |words: &str| -> Vec<String> {
        let script = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; _clipgan clipgan \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        stdout(&run(shell("bash").arg("-c").arg(script))).lines().map(str::to_string).collect()
    };
    let top = complete("clipgan tr");
    assert_eq!(top, ["train"], "clipgan tr<tab>");
    let nested = complete("clipgan queue a");
    assert_eq!(nested, ["add"], "clipgan queue a<tab>");
    let opts = complete("clipgan queue add --aft");
    assert!(opts.contains(&"--after".to_string()) && opts.contains(&"--after-any".to_string()), "{opts:?}");
}

#[test]
fn fish_completes_subcommands_and_options() {
    let prefix = install();
    let file = prefix.path().join("share/fish/vendor_completions.d/clipgan.fish");
    let complete = |line: &str| -> Vec<String> {
        let script = format!("source '{}'; complete -C '{line}'", file.display());
        // `complete -C` prints "candidate<TAB>description".
        stdout(&run(shell("fish").arg("--no-config").arg("-c").arg(script)))
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    let top = complete("clipgan tra");
    assert!(top.contains(&"train".to_string()), "{top:?}");
    let nested = complete("clipgan queue ad");
    assert!(nested.contains(&"add".to_string()), "{nested:?}");
    let opts = complete("clipgan plot --ta");
    assert!(opts.contains(&"--tag".to_string()), "{opts:?}");
}

#[test]
fn zsh_loads_the_completion_function() {
    let prefix = install();
    let dir = prefix.path().join("share/zsh/site-functions");
    // The file parses, and compinit finds `_clipgan` for `clipgan` in the installed folder.
    run(shell("zsh").arg("-n").arg(dir.join("_clipgan")));
    let script = format!("fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -D; print -r -- ${{_comps[clipgan]}}", dir.display());
    let out = run(shell("zsh").arg("-f").arg("-c").arg(script));
    assert_eq!(stdout(&out).trim(), "_clipgan", "zsh did not register the completion");
}
