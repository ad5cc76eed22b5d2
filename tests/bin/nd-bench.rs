//! nd-bench: one benchmark run of netdrop (work in progress).

fn main() {
    eprintln!("nd-bench: not implemented yet");
    std::process::exit(1);
}
