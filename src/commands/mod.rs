//! One module per subcommand.

/// Print a line on stdout. A closed stdout (`vnetbed verify | head -1`) is a normal way for a
/// reader to stop listening: the line is dropped and the job goes on to its end and its exit
/// status, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod args;
pub mod bench;
pub mod doctor;
pub mod image;
pub mod net;
pub mod report;
pub mod run;
pub mod shaping;
pub mod soak;
pub mod verify;

use crate::cli::Command;

/// Run a subcommand; returns the process exit status.
pub fn dispatch(command: Command) -> i32 {
    match command {
        Command::Run(args) => run::main(args),
        Command::Net(args) => net::main(args),
        Command::Doctor(args) => doctor::main(args),
        Command::Image(args) => image::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Report(args) => report::main(args),
        Command::Soak(args) => soak::soak_main(args),
        Command::Reproduce(args) => soak::reproduce_main(args),
        Command::Verify(args) => verify::main(args),
    }
}
