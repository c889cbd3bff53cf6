//! The explanation trace: for each rung of a policy, whether it was chosen,
//! skipped (and which guard stopped it), or never reached.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The rung applied; its actions are the plan.
    Chosen,
    /// The rung was considered and did not apply; `why` says which check
    /// stopped it.
    Skipped,
    /// An earlier rung was chosen (one rung per object per run).
    NotReached,
    /// Chosen by the default ladder, then replaced by the team policy that
    /// called `ladder()`.
    Overridden,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Chosen => "chosen",
            Status::Skipped => "skipped",
            Status::NotReached => "not reached",
            Status::Overridden => "overridden",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The policy that recorded the step (`ladder` for the default ladder,
    /// also when a team policy delegates to it).
    pub policy: String,
    pub rung: String,
    pub status: Status,
    pub why: String,
}
