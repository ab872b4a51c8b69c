//! Small helpers shared by every layer: human durations (`"250ms"`, `"5s"`) and
//! process resource readings (RSS, open-file limit).

pub mod duration;
pub mod proc;
