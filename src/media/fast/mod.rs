//! The lean send path's pure parts: transport-wide feedback, bandwidth estimation, pacing, RTX history.

pub mod twcc;
pub mod gcc;
