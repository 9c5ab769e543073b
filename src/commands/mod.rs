//! One module per subcommand.

pub mod bench;
pub mod doctor;
pub mod image;
pub mod net;
pub mod report;
pub mod run;
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
