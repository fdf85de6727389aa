//! The `kmirror` command line.
//!
//! For now it states what this build contains and what the command will do;
//! the MirrorMaker-compatible flags arrive with the mirror engine.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("kmirror {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    println!(
        "kmirror {}: Kafka topic mirror (MirrorMaker 1 drop-in), work in progress.\n\n\
         This build contains the protocol core (kmirror-protocol): framing, version\n\
         negotiation, zero-copy record batches, codecs and the Produce rules checker.\n\
         The mirror itself is not in this build yet. The planned command line is\n\
         MirrorMaker 1's:\n\n  \
         kmirror --consumer.config consumer.properties --producer.config producer.properties \\\n      \
         --whitelist testtopic --num.streams 4",
        env!("CARGO_PKG_VERSION")
    );
    if args.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("\nerror: mirroring is not available in this build; nothing was copied.");
        ExitCode::from(2)
    }
}
