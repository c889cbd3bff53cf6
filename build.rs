//! Stamps the git revision into the binary for `stsmend --version`, so a
//! report or a bug can be traced to the commit that built the agent.
//! `STSMEND_GIT_REVISION` wins (a Docker build copies no `.git`); outside a
//! git checkout the revision is `unknown`.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=STSMEND_GIT_REVISION");
    let revision = std::env::var("STSMEND_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=STSMEND_GIT_REVISION={revision}");

    // Rebuild when HEAD moves: HEAD itself changes on a checkout, the branch
    // ref (or packed-refs) on a commit. Only existing files are watched: a
    // missing one would make cargo rerun this script on every build.
    if git(&["rev-parse", "--git-dir"]).is_some() {
        let mut refs = vec![
            "HEAD".to_string(),
            "packed-refs".to_string(),
            "refs/heads".to_string(),
        ];
        refs.extend(git(&["symbolic-ref", "-q", "HEAD"]));
        // --git-path resolves each to the right directory in a worktree too.
        let watched = refs
            .iter()
            .filter_map(|r| git(&["rev-parse", "--git-path", r]))
            .map(PathBuf::from)
            .filter(|p| p.exists());
        for path in watched {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
