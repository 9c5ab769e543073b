//! vnetbed as a library: the parts the subcommands (and the end-to-end tests) share.

pub mod net;
