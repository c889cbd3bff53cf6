use super::Report;
use crate::error::{Error, Result};

pub fn render(report: &Report) -> Result<String> {
    let mut s =
        serde_json::to_string_pretty(report).map_err(|e| Error::encode("JSON report", e))?;
    s.push('\n');
    Ok(s)
}
