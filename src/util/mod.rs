//! Small helpers shared by every layer: human durations (`"250ms"`, `"5s"`), numbers as
//! people read them (`60.3K req/s`, `20.5 ms`), and processes: resource readings (RSS,
//! open-file limit) and the one way mcpscript starts a command (its own process group,
//! signalled whole, gone with mcpscript even when mcpscript is SIGKILLed).

pub mod duration;
pub mod human;
pub mod proc;
