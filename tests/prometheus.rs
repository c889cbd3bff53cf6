//! The shipped Prometheus rules and dashboard, checked by the real
//! promtool: `promtool check rules`, `promtool test rules` on
//! deploy/prometheus/stsmend-rules.test.yaml, and the dashboard's queries
//! parsed. scripts/prometheus.sh installs promtool from Debian when it is
//! missing; only where that cannot be done is the test skipped, saying so.

use std::process::Command;

#[test]
fn promtool_checks_and_tests_the_rules() {
    let out = Command::new("bash")
        .arg("scripts/prometheus.sh")
        .arg("--check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(4) {
        eprintln!(
            "SKIPPED: promtool could not be installed (scripts/prometheus.sh exit 4):\n{stderr}"
        );
        return;
    }
    assert!(
        out.status.success(),
        "scripts/prometheus.sh --check:\n{stderr}"
    );
    assert!(stderr.contains("SUCCESS: 5 rules found"), "{stderr}");
    assert!(
        stderr.contains("Unit Testing:  stsmend-rules.test.yaml\n  SUCCESS"),
        "{stderr}"
    );
}
