//! The lean send path's pure parts: transport-wide feedback, bandwidth estimation, pacing, RTX history.

pub mod gcc;
pub mod history;
pub mod pacer;
pub mod twcc;
