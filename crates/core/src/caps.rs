//! Caps on the text a run quotes from the cluster. An Event message, a
//! container's termination message or a log can be as large as their
//! writer likes (a 190 MB message made a 380 MB JSON report and 1.3 GB of
//! memory); no diagnosis needs more than their beginning, so each is cut,
//! saying so, before anything reads it.

use crate::inventory::Inventory;

/// Bytes kept of one message (an Event's, a pod condition's, a container
/// state's). The API server caps an Event's message at 1 KiB when it is
/// created through events.k8s.io; the core API does not.
pub const MESSAGE_MAX: usize = 4096;
/// Bytes kept of one container log (the last ones: they say why it ended).
pub const LOG_MAX: usize = 16 * 1024;

/// Room kept for the marker that says what was cut, so a cut text is
/// within `max` and cutting it again (a recorded run replayed) leaves it
/// as it is.
const MARKER: usize = 64;

/// Cuts `text` to at most `max` bytes (its beginning, at a character
/// boundary), saying how much was cut.
pub fn head(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(MARKER);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!(" [cut: {cut} more bytes]"));
}

/// Keeps at most `max` bytes of `text`, its end, saying how much was cut.
pub fn tail(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut start = text.len() - max.saturating_sub(MARKER);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    *text = format!("[cut: {start} bytes before] {}", &text[start..]);
}

fn message(m: &mut Option<String>) {
    if let Some(m) = m.as_mut() {
        head(m, MESSAGE_MAX);
    }
}

/// Caps every quoted text of `inv` in place.
pub fn inventory(inv: &mut Inventory) {
    for e in &mut inv.events {
        message(&mut e.message);
    }
    for log in &mut inv.logs {
        tail(&mut log.text, LOG_MAX);
    }
    for pod in &mut inv.pods {
        let Some(status) = pod.status.as_mut() else {
            continue;
        };
        message(&mut status.message);
        for c in status.conditions.iter_mut().flatten() {
            message(&mut c.message);
        }
        let containers = status
            .container_statuses
            .iter_mut()
            .flatten()
            .chain(status.init_container_statuses.iter_mut().flatten())
            .chain(status.ephemeral_container_statuses.iter_mut().flatten());
        for c in containers {
            for state in [c.state.as_mut(), c.last_state.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(w) = state.waiting.as_mut() {
                    message(&mut w.message);
                }
                if let Some(t) = state.terminated.as_mut() {
                    message(&mut t.message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_message_is_cut_at_a_character_boundary_saying_so() {
        let mut m = "é".repeat(MESSAGE_MAX);
        head(&mut m, MESSAGE_MAX);
        assert!(m.len() <= MESSAGE_MAX, "{}", m.len());
        assert!(
            m.ends_with(&format!(" [cut: {} more bytes]", MESSAGE_MAX + MARKER)),
            "{}",
            &m[m.len() - 40..]
        );
        // Cut once, cut for good: a replay of a recorded run reads the same.
        let once = m.clone();
        head(&mut m, MESSAGE_MAX);
        assert_eq!(m, once);
        let mut short = "fine".to_string();
        head(&mut short, MESSAGE_MAX);
        assert_eq!(short, "fine");
        let mut log = format!("{}end", "x".repeat(LOG_MAX));
        tail(&mut log, LOG_MAX);
        assert!(log.len() <= LOG_MAX);
        assert!(
            log.starts_with(&format!("[cut: {} bytes before] ", MARKER + 3))
                && log.ends_with("end"),
            "{}",
            &log[..40]
        );
        let once = log.clone();
        tail(&mut log, LOG_MAX);
        assert_eq!(log, once);
    }

    #[test]
    fn every_quoted_text_of_an_inventory_is_capped() {
        let mut inv = Inventory::default();
        let big = "m".repeat(10 * MESSAGE_MAX);
        crate::source::files::parse_into(
            &mut inv,
            std::path::Path::new("t.yaml"),
            &format!(
                "apiVersion: v1\nkind: Event\nmetadata: {{name: e, namespace: shop}}\ninvolvedObject: {{kind: Pod, name: db-0}}\nmessage: {big}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: db-0, namespace: shop}}\nstatus:\n  message: {big}\n  conditions: [{{type: Ready, status: 'False', message: {big}}}]\n  containerStatuses:\n  - name: db\n    image: db\n    imageID: ''\n    ready: false\n    restartCount: 1\n    state: {{waiting: {{reason: CrashLoopBackOff, message: {big}}}}}\n    lastState: {{terminated: {{exitCode: 1, message: {big}}}}}\n"
            ),
        )
        .unwrap();
        inventory(&mut inv);
        let text = serde_json::to_string(&(&inv.events, &inv.pods)).unwrap();
        assert!(
            text.len() < 6 * (MESSAGE_MAX + 100),
            "{} bytes kept",
            text.len()
        );
        assert_eq!(
            text.matches("[cut: ").count(),
            5,
            "each message says it was cut"
        );
    }
}
