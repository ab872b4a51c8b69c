//! Small helpers shared by every layer: human durations (`"250ms"`, `"5s"`), numbers as
//! people read them (`60.3K req/s`, `20.5 ms`) and
//! process resource readings (RSS, open-file limit).

pub mod duration;
pub mod human;
pub mod proc;
