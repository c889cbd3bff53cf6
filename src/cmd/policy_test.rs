//! `stsmend policy test`: a policy's cases, offline.

use super::*;

pub(crate) fn policy_test(args: PolicyTestArgs) -> stsmend::Result<u8> {
    let results = stsmend::cases::run_dir(&args.dir)?;
    match args.output {
        PolicyTestFormat::Text => print!("{}", results.render(args.verbose)),
        PolicyTestFormat::Junit => print!("{}", stsmend::report::junit::policy_tests(&results)?),
    }
    Ok(if results.failed() == 0 { 0 } else { 1 })
}
