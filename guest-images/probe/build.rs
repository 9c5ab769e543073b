//! Link the probe as a freestanding, static image with `.text` at 2 MiB.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=src/boot.s");
    for arg in [
        "-nostartfiles".to_string(),
        "-static".to_string(),
        "-no-pie".to_string(),
        format!("-Wl,-T,{dir}/link.ld"),
        "-Wl,--build-id=none".to_string(),
        "-Wl,-z,noexecstack".to_string(),
        "-Wl,-z,norelro".to_string(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
