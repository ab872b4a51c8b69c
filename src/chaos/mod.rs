//! Fault injection in user space: the proxy that sits in front of any TCP-based target and
//! injects TCP-level and MCP-message-level faults.
