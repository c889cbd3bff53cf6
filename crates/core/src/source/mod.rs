//! Where objects come from: files written by kubectl (or by `stsmend
//! snapshot`), or a live cluster through [`crate::cluster`].

pub mod files;
mod json_list;
